"""Country borders: Natural Earth 1:10m polygons (as packaged by ``geo-intel-offline``), with codes
that agree with GeoNames, and point-in-polygon look-ups through a ``shapely`` STRtree."""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import shapely

from .common import _CODE_OVERRIDES, _EDGE_NUDGE_DEG, SEA_KEY, _check_latlon, _xyz
from .gazetteer import _gazetteer

__all__ = ["country_codes", "country_outlines", "known_country_codes", "country_boundary_points"]


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


def country_codes(latlon: np.ndarray) -> np.ndarray:
    """ISO 3166 alpha-2 code of the country polygon containing each point ``(N, 2)`` -> ``(N,)`` str.

    ``""`` for a point at sea (in no polygon).
    """
    lat, lon = _check_latlon(latlon)
    borders = _borders()
    part = _part_of(borders.tree, lat, lon)
    return np.where(part >= 0, borders.codes[np.maximum(part, 0)], SEA_KEY).astype(borders.codes.dtype)


def known_country_codes() -> frozenset[str]:
    """The ISO 3166 alpha-2 codes that some country polygon carries (what :func:`country_codes` can return)."""
    return frozenset(str(c) for c in _borders().codes if c)


def country_boundary_points(codes: frozenset[str] | None = None) -> np.ndarray:
    """The vertices of the polygon parts of the given countries (all countries when ``None``: every
    coastline and border), ``(M, 2)`` (lat, lon) degrees. Natural Earth 1:10m vertices lie a few km
    apart, so every grid cell a border crosses holds some of them (what a region mask refines)."""
    borders = _borders()
    keep = np.ones(len(borders.codes), dtype=bool) if codes is None else np.isin(borders.codes, sorted(codes))
    parts = borders.tree.geometries[np.flatnonzero(keep)]
    # Densified to 0.05 degrees (~5 km): a long straight border segment still marks every cell it crosses.
    lonlat = (shapely.get_coordinates(shapely.segmentize(shapely.boundary(parts), 0.05)) if len(parts)
              else np.empty((0, 2)))
    return np.ascontiguousarray(lonlat[:, ::-1])
