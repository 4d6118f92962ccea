"""What the user knows about where a photo was taken, as an allowed area of the sphere.

:class:`Constraints` is the intersection of every condition given: inside some countries (ISO 3166
alpha-2 codes, Natural Earth polygons as :func:`globeflow.geo.places.country_codes` reads them) or
admin regions (GeoNames ``"admin1, CC"`` keys, as :func:`~globeflow.geo.places.area_keys` writes
them), outside others, a latitude/longitude box, a GeoJSON polygon file, land or sea only, a
distance band around a point. :meth:`Constraints.allows` tests points exactly (a polygon test per
point); :func:`allowed_area` gives, per HEALPix cell, the share of its area that is allowed, so that
a density map is restricted *exactly up to the map's resolution* by multiplying each cell's mass by
its share and renormalising (:func:`constrain_map`).

The share is found coarse to fine: a cell whose centre and neighbours agree, and that no border
crosses, is wholly in or out; a mixed cell is split into its four nested children, recursively, to a
depth where the leaves are an eighth of the cell across (or finer, for a band or box narrower than
that). A border "crosses" a cell when one of the border's vertices (densified to ~5 km) falls in it,
so an island or a country smaller than a cell is never lost between cell centres. Admin regions have
no polygons (they are nearest-place cells of GeoNames), so only the neighbour rule finds their edges.
"""

from __future__ import annotations

import functools
import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import shapely
import shapely.geometry
import torch

from ...checks import require_finite
from ...geo import healpix as hgrid
from ...geo import places
from ... import geo
from ...geo.distance import EARTH_RADIUS_KM, haversine_km
from ..density import DensityMap

__all__ = ["Constraints", "AllowedArea", "allowed_area", "constrain_map", "EXCLUDED_LOG_DENSITY",
           "parse_codes", "parse_regions", "parse_numbers", "NoAllowedMass"]

#: The log-density (nats/sr) a constrained map gives a cell outside the allowed area: exp of it is 0
#: in float64, and unlike -inf it interpolates and sorts without NaN.
EXCLUDED_LOG_DENSITY = -1.0e4

#: Mixed cells are split until their leaves are at most this fraction of the map's cell across.
_LEAF_FRACTION = 1.0 / 8.0
#: Deepest split below the map's resolution (4^12 leaves per cell).
_MAX_DEPTH = 12


class NoAllowedMass(ValueError):
    """The constraints leave no probability: they allow nothing, or only where the density is 0."""


def parse_codes(text: str) -> tuple[str, ...]:
    """``"FR,de, CH"`` -> ``("FR", "DE", "CH")`` (command-line lists of country codes)."""
    return tuple(c.strip().upper() for c in text.split(",") if c.strip())


def parse_regions(text: str) -> tuple[str, ...]:
    """``"Bavaria, DE; Tyrol, AT"`` -> ``("Bavaria, DE", "Tyrol, AT")``: region keys hold a comma, so
    a list of them is separated by semicolons."""
    return tuple(", ".join(p.strip() for p in r.split(",")) for r in text.split(";") if r.strip())


def parse_numbers(text: str) -> tuple[float, ...]:
    """``"40,-10,60,30"`` -> ``(40.0, -10.0, 60.0, 30.0)``."""
    try:
        return tuple(float(v) for v in text.split(","))
    except ValueError:
        raise ValueError(f"expected comma-separated numbers, got {text!r}") from None


@dataclass(frozen=True)
class Constraints:
    """Where the photo may have been taken: the intersection of every condition that is set.

    Attributes:
        within: ISO 3166 alpha-2 codes; the location is in one of these countries.
        exclude: ISO codes; the location is in none of these countries.
        within_regions: GeoNames region keys (``"Bavaria, DE"``); the location is in one of them.
        exclude_regions: region keys; the location is in none of them.
        bbox: ``(south, west, north, east)`` degrees; ``west > east`` crosses the antimeridian.
        within_geojson: a GeoJSON file (Polygon, MultiPolygon, Feature or FeatureCollection of them,
            lon/lat as RFC 7946 says, cut at the antimeridian); the location is inside it.
        on_land, at_sea: in some country polygon / in none (Natural Earth 1:10m coastlines).
        distance_band: ``(lat, lon, min_km, max_km)``: the great-circle distance to the point is
            between ``min_km`` and ``max_km``.
    """

    within: tuple[str, ...] = field(default=(), metadata={
        "help": "only these countries: ISO 3166 alpha-2 codes, e.g. FR,DE,CH", "parse": parse_codes})
    exclude: tuple[str, ...] = field(default=(), metadata={
        "help": "not these countries (ISO codes, e.g. GB,IE)", "parse": parse_codes})
    within_regions: tuple[str, ...] = field(default=(), metadata={
        "flag": "--within-region", "help": "only these admin regions, as 'admin1, CC' separated by ';', e.g. "
                                           "'Bavaria, DE; Tyrol, AT'", "parse": parse_regions})
    exclude_regions: tuple[str, ...] = field(default=(), metadata={
        "flag": "--exclude-region", "help": "not these admin regions ('admin1, CC'; ...)", "parse": parse_regions})
    bbox: tuple[float, float, float, float] | None = field(default=None, metadata={
        "help": "only inside this box: SOUTH,WEST,NORTH,EAST degrees (WEST > EAST crosses the antimeridian)",
        "parse": parse_numbers})
    within_geojson: str | None = field(default=None, metadata={
        "help": "only inside the (Multi)Polygons of this GeoJSON file"})
    on_land: bool = field(default=False, metadata={"help": "only on land (inside some country polygon)"})
    at_sea: bool = field(default=False, metadata={"help": "only at sea (in no country polygon)"})
    distance_band: tuple[float, float, float, float] | None = field(default=None, metadata={
        "help": "only between MIN_KM and MAX_KM from a point: LAT,LON,MIN_KM,MAX_KM", "parse": parse_numbers})

    def __post_init__(self) -> None:
        require_finite(self)
        for name in ("within", "exclude"):
            for code in getattr(self, name):
                if not (len(code) == 2 and code.isalpha() and code.isupper()):
                    raise ValueError(f"--{name}: {code!r} is not an ISO 3166 alpha-2 country code (two capital "
                                     f"letters, e.g. FR)")
        for name in ("within_regions", "exclude_regions"):
            for key in getattr(self, name):
                if places.KEY_SEPARATOR not in key:
                    raise ValueError(f"--{name.replace('_regions', '-region')}: {key!r} is not a region key "
                                     f"('admin1, CC', e.g. 'Bavaria, DE')")
        if self.bbox is not None:
            if len(self.bbox) != 4:
                raise ValueError(f"--bbox needs SOUTH,WEST,NORTH,EAST (4 numbers), got {len(self.bbox)}")
            s, w, n, e = self.bbox
            if not (-90 <= s < n <= 90 and -180 <= w <= 180 and -180 <= e <= 180 and w != e):
                raise ValueError(f"--bbox {self.bbox}: needs -90 <= SOUTH < NORTH <= 90 and WEST, EAST in "
                                 "[-180, 180], not equal")
        if self.distance_band is not None:
            if len(self.distance_band) != 4:
                raise ValueError(f"--distance-band needs LAT,LON,MIN_KM,MAX_KM (4 numbers), got "
                                 f"{len(self.distance_band)}")
            lat, lon, lo, hi = self.distance_band
            if not (-90 <= lat <= 90 and -180 <= lon <= 180 and 0 <= lo < hi):
                raise ValueError(f"--distance-band {self.distance_band}: needs a point in range and "
                                 "0 <= MIN_KM < MAX_KM")
        if self.on_land and self.at_sea:
            raise ValueError("--on-land and --at-sea exclude each other: nothing would be allowed")
        overlap = set(self.within) & set(self.exclude)
        if overlap and set(self.within) <= set(self.exclude):
            raise ValueError(f"--within and --exclude name the same countries ({', '.join(sorted(overlap))}): "
                             "nothing would be allowed")
        if self.within_geojson is not None:
            _geojson_shape(*_file_key(self.within_geojson))  # a bad file fails here, naming it

    @property
    def active(self) -> bool:
        """Whether any condition is set (an empty set of constraints allows everything)."""
        return self != Constraints()

    def describe(self) -> dict[str, Any]:
        """The conditions that are set, for answers and records."""
        default = asdict(Constraints())
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self).items() if v != default[k]}

    def check_known(self) -> None:
        """Refuse country codes that no polygon carries and region keys that no GeoNames place has (a
        typo would allow nothing, or exclude nothing, silently). Loads the borders only when codes are given."""
        for name in ("within", "exclude"):
            unknown = [c for c in getattr(self, name) if c not in places.known_country_codes()]
            if unknown:
                raise ValueError(f"--{name}: no country has the code {', '.join(unknown)} (ISO 3166 alpha-2, "
                                 "as in the answers' countries)")
        if self.within_regions or self.exclude_regions:
            regions = places.known_region_keys()
            for name in ("within_regions", "exclude_regions"):
                unknown = [k for k in getattr(self, name) if k not in regions]
                if unknown:
                    raise ValueError(f"--{name.replace('_regions', '-region')}: no region has the key "
                                     f"{'; '.join(map(repr, unknown))} (as in the answers' regions, e.g. "
                                     "'Bavaria, DE')")

    def allows(self, latlon: np.ndarray) -> np.ndarray:
        """Whether each point ``(N, 2)`` (lat, lon) degrees is allowed, ``(N,)`` bool (exact tests)."""
        ll = np.asarray(latlon, dtype=np.float64).reshape(-1, 2)
        ok = np.ones(len(ll), dtype=bool)
        if not len(ll) or not self.active:
            return ok
        if self.within or self.exclude or self.on_land or self.at_sea:
            cc = places.country_codes(ll)
            if self.within:
                ok &= np.isin(cc, self.within)
            if self.exclude:
                ok &= ~np.isin(cc, self.exclude)
            if self.on_land:
                ok &= cc != places.SEA_KEY
            if self.at_sea:
                ok &= cc == places.SEA_KEY
        if self.within_regions or self.exclude_regions:
            keys = places.area_keys(ll, "region")
            if self.within_regions:
                ok &= np.isin(keys, self.within_regions)
            if self.exclude_regions:
                ok &= ~np.isin(keys, self.exclude_regions)
        if self.bbox is not None:
            s, w, n, e = self.bbox
            lat, lon = ll[:, 0], ll[:, 1]
            in_lon = (lon >= w) & (lon <= e) if w < e else (lon >= w) | (lon <= e)
            ok &= (lat >= s) & (lat <= n) & in_lon
        if self.within_geojson is not None:
            ok &= shapely.contains_xy(_geojson_shape(*_file_key(self.within_geojson)), ll[:, 1], ll[:, 0])
        if self.distance_band is not None:
            lat0, lon0, lo, hi = self.distance_band
            d = _distance_km(ll, lat0, lon0)
            ok &= (d >= lo) & (d <= hi)
        return ok

    def boundary_points(self) -> np.ndarray:
        """Points along every border of the allowed area, ``(M, 2)`` degrees, dense enough (~5 km)
        that each cell a border crosses holds one (region borders have none: see the module)."""
        parts = [np.empty((0, 2))]
        codes = frozenset(self.within) | frozenset(self.exclude)
        if codes:
            parts.append(places.country_boundary_points(codes))
        if self.on_land or self.at_sea:
            parts.append(places.country_boundary_points(None))
        if self.bbox is not None:
            s, w, n, e = self.bbox
            width = e - w if w < e else e + 360.0 - w
            lons = w + np.linspace(0.0, width, max(2, int(width / 0.05) + 1))
            lons = np.where(lons > 180.0, lons - 360.0, lons)
            lats = np.linspace(s, n, max(2, int((n - s) / 0.05) + 1))
            parts += [np.stack((np.full_like(lons, s), lons), 1), np.stack((np.full_like(lons, n), lons), 1),
                      np.stack((lats, np.full_like(lats, w)), 1), np.stack((lats, np.full_like(lats, e)), 1)]
        if self.within_geojson is not None:
            shape = _geojson_shape(*_file_key(self.within_geojson))
            parts.append(shapely.get_coordinates(shapely.segmentize(shapely.boundary(shape), 0.05))[:, ::-1])
        if self.distance_band is not None:
            lat0, lon0, lo, hi = self.distance_band
            for r in (lo, hi):
                if r > 0:
                    parts.append(_circle(lat0, lon0, r))
        return np.concatenate(parts)

    def feature_km(self) -> float | None:
        """The narrowest width of the allowed area that is known in advance (a band's or a box's),
        which the mask must resolve; None when there is none."""
        widths = []
        if self.distance_band is not None:
            widths.append(self.distance_band[3] - self.distance_band[2])
        if self.bbox is not None:
            s, w, n, e = self.bbox
            width = e - w if w < e else e + 360.0 - w
            widths.append(math.radians(n - s) * EARTH_RADIUS_KM)
            widths.append(math.radians(width) * EARTH_RADIUS_KM * max(math.cos(math.radians(max(abs(s), abs(n)))),
                                                                    1e-3))
        return min(widths) if widths else None


def _distance_km(ll: np.ndarray, lat0: float, lon0: float) -> np.ndarray:
    d = haversine_km(torch.from_numpy(ll), torch.tensor([lat0, lon0], dtype=torch.float64).expand(len(ll), 2))
    return d.numpy()


def _circle(lat0: float, lon0: float, radius_km: float) -> np.ndarray:
    """Points every ~2 km (at least 720) on the circle of great-circle radius ``radius_km``, degrees."""
    angle = min(radius_km / EARTH_RADIUS_KM, math.pi)
    n = max(720, int(2 * math.pi * EARTH_RADIUS_KM * math.sin(angle) / 2.0))
    centre = geo.latlon_to_xyz(torch.tensor([lat0, lon0], dtype=torch.float64))
    xyz = geo.points_around(centre, torch.tensor(angle), torch.linspace(0.0, 2 * math.pi, n + 1)[:-1])
    return geo.xyz_to_latlon(xyz).numpy()


def _file_key(path: str) -> tuple[str, float, int]:
    p = Path(os.path.expanduser(path))
    try:
        st = p.stat()
    except OSError as e:
        raise ValueError(f"--within-geojson {path}: {e.strerror or e}") from None
    return str(p), st.st_mtime, st.st_size


@functools.lru_cache(maxsize=8)
def _geojson_shape(path: str, mtime: float, size: int) -> Any:
    """The union of a GeoJSON file's (Multi)Polygons, prepared for point tests (cached per file version)."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"--within-geojson {path}: not a readable GeoJSON file ({e})") from None
    items = data.get("features", [data]) if isinstance(data, dict) else []
    shapes = []
    for i, item in enumerate(items):
        geometry = item.get("geometry", item) if isinstance(item, dict) else None
        if not isinstance(geometry, dict) or geometry.get("type") not in ("Polygon", "MultiPolygon"):
            kind = geometry.get("type") if isinstance(geometry, dict) else type(geometry).__name__
            raise ValueError(f"--within-geojson {path}: feature {i} is a {kind}, not a Polygon or MultiPolygon")
        try:
            shapes.append(shapely.geometry.shape(geometry))
        except (ValueError, TypeError, IndexError, shapely.errors.GEOSException) as e:
            raise ValueError(f"--within-geojson {path}: feature {i} has invalid coordinates ({e})") from None
    if not shapes:
        raise ValueError(f"--within-geojson {path}: holds no Polygon or MultiPolygon")
    shape = shapely.union_all([shapely.make_valid(s) for s in shapes])
    shapely.prepare(shape)
    return shape


@dataclass(frozen=True)
class AllowedArea:
    """The allowed share of every cell of a NESTED HEALPix grid.

    Attributes:
        fraction: ``(12 nside^2,)`` in [0, 1]: the share of each cell's area that is allowed.
        inside_xyz: ``(12 nside^2, 3)``: a point of each cell that is allowed (NaN for cells with none):
            where a draw inside a mixed cell keeps missing the allowed part.
        tested_points: the points tested to build it (its cost).
    """

    nside: int
    fraction: np.ndarray
    inside_xyz: np.ndarray
    tested_points: int


def _centres_latlon(nside: int, pix: np.ndarray) -> np.ndarray:
    lon, lat = hgrid.pix2ang(nside, pix, nest=True, lonlat=True)
    return np.stack((lat, np.where(lon > 180.0, lon - 360.0, lon)), axis=-1)


@functools.lru_cache(maxsize=16)
def allowed_area(constraints: Constraints, nside: int) -> AllowedArea:
    """The share of each cell at ``nside`` that ``constraints`` allow (see the module docstring);
    cached, so a page or a batch of photos pays for a constraint once."""
    constraints.check_known()
    npix = hgrid.num_cells(nside)
    cells = np.arange(npix)
    ok = constraints.allows(_centres_latlon(nside, cells))
    tested = npix
    xyz = np.stack(hgrid.pix2vec(nside, cells, nest=True), axis=-1)
    inside = np.where(ok[:, None], xyz, np.nan)
    boundary = constraints.boundary_points()
    nb = hgrid.neighbours(nside, cells, nest=True)
    differs = ((nb >= 0) & (ok[np.maximum(nb, 0)] != ok[None, :])).any(axis=0)
    mixed = differs.copy()
    if len(boundary):
        mixed[hgrid.ang2pix(nside, boundary[:, 1], boundary[:, 0], nest=True, lonlat=True)] = True
    fraction = ok.astype(np.float64)
    depth = max(1, math.ceil(math.log2(1.0 / _LEAF_FRACTION)))
    feature = constraints.feature_km()
    if feature is not None:
        depth = max(depth, math.ceil(math.log2(4.0 * hgrid.resolution_km(nside) / feature)))
    depth = min(depth, _MAX_DEPTH)
    roots = np.flatnonzero(mixed)
    fraction[roots] = 0.0
    active, owner = roots, roots
    for d in range(1, depth + 1):
        if not active.size:
            break
        fine = nside << d
        kids = (4 * active[:, None] + np.arange(4)).reshape(-1)
        kid_owner = np.repeat(owner, 4)
        kid_ok = constraints.allows(_centres_latlon(fine, kids))
        tested += kids.size
        groups = kid_ok.reshape(-1, 4)
        split = np.repeat(groups.any(axis=1) & ~groups.all(axis=1), 4)
        if len(boundary) and d < depth:
            crossed = np.unique(hgrid.ang2pix(fine, boundary[:, 1], boundary[:, 0], nest=True, lonlat=True))
            split |= np.isin(kids, crossed)
        if d == depth:
            split[:] = False
        leaf = ~split
        np.add.at(fraction, kid_owner[leaf], kid_ok[leaf] * 0.25 ** d)
        # A point known to be allowed, for cells that have none yet.
        found = kid_ok & np.isnan(inside[kid_owner, 0])
        if found.any():
            first = np.unique(kid_owner[found], return_index=True)[1]
            idx = np.flatnonzero(found)[first]
            inside[kid_owner[idx]] = np.stack(hgrid.pix2vec(fine, kids[idx], nest=True), axis=-1)
        active, owner = kids[split], kid_owner[split]
    return AllowedArea(nside, np.clip(fraction, 0.0, 1.0), inside, tested)


def constrain_map(dmap: DensityMap, constraints: Constraints) -> tuple[DensityMap, float, AllowedArea]:
    """``dmap`` restricted to the allowed area and renormalised: ``(map, prior mass, area)``.

    The prior mass is the probability the unconstrained map gives the allowed area (how much the
    model believed it before being told). Raises :class:`NoAllowedMass` when it is 0: the constraints
    contradict the photo completely (or allow nothing), and no renormalised density exists.
    """
    area = allowed_area(constraints, dmap.nside)
    if not area.fraction.any():
        raise NoAllowedMass(f"the constraints allow no part of the sphere ({json.dumps(constraints.describe())})")
    q = dmap.probabilities() * area.fraction
    prior = float(q.sum())
    if not prior > 0.0:
        raise NoAllowedMass(f"the constraints ({json.dumps(constraints.describe())}) leave no probability: the model "
                         "gives the allowed area probability 0 (below float precision), so the photo contradicts "
                         "them")
    with np.errstate(divide="ignore"):
        logp = np.where(area.fraction > 0, np.log(q / prior / dmap.cell_area), EXCLUDED_LOG_DENSITY)
    out = DensityMap(logp, dmap.evaluated_nside, dmap.evaluations, dmap.nfe, dmap.units,
                     error_nats=dmap.error_nats, source=dmap.source)
    return out, prior, area
