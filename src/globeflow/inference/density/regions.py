"""Credible regions as RFC 7946 GeoJSON: one MultiPolygon per region, cut at the antimeridian.

A region is a set of HEALPix cells. Each cell's boundary (``step`` points per edge, so curved edges
stay curved in longitude/latitude) becomes a polygon in degrees; the cells are merged into one
(Multi)Polygon with shapely. What RFC 7946 asks and a per-cell export got wrong:

- longitudes stay in [-180, 180]: a cell crossing the antimeridian is unwrapped, then cut into its
  parts west and east of it (section 3.1.9), instead of reaching 182.8;
- a cell with a vertex at a pole keeps its pole edge: the vertex (whose longitude is undefined)
  becomes the segment along latitude +-90 between its neighbours' longitudes, so the polar cap is
  covered instead of notched;
- exterior rings run counter-clockwise and holes clockwise (section 3.1.6); rings are closed.
"""

from __future__ import annotations

import numpy as np
import shapely
from shapely import affinity
from shapely.geometry import MultiPolygon, Polygon, box, mapping
from shapely.geometry.polygon import orient

from ...geo import healpix as hgrid

__all__ = ["region_geometry"]

_WORLD = box(-180.0, -90.0, 180.0, 90.0)
#: Snapping grid (degrees, ~1 cm): shared cell edges then coincide exactly and merge without slivers.
_GRID = 1e-7


def _cell_polygons(nside: int, cell: int, step: int) -> list[Polygon]:
    xyz = hgrid.boundaries(nside, int(cell), step=step, nest=True)  # (3, 4 step)
    lon, lat = hgrid.vec2ang(xyz.T, lonlat=True)
    lon = np.where(lon > 180.0, lon - 360.0, lon)
    n = lon.size
    points: list[tuple[float, float]] = []
    for i in range(n):
        if abs(lat[i]) > 90.0 - 1e-9:
            pole = 90.0 if lat[i] > 0 else -90.0
            points += [(lon[i - 1], pole), (lon[(i + 1) % n], pole)]
        else:
            points.append((lon[i], lat[i]))
    ring = [points[0]]
    for x, y in points[1:]:  # continuous longitudes: no edge jumps across the antimeridian
        while x - ring[-1][0] > 180.0:
            x -= 360.0
        while x - ring[-1][0] < -180.0:
            x += 360.0
        ring.append((x, y))
    poly = Polygon(ring)
    lo, _, hi, _ = poly.bounds
    if lo >= -180.0 and hi <= 180.0:
        return [poly]
    pieces = [affinity.translate(poly, xoff=dx).intersection(_WORLD) for dx in (-360.0, 0.0, 360.0)]
    return [g for p in pieces for g in getattr(p, "geoms", [p]) if isinstance(g, Polygon) and not g.is_empty]


def region_geometry(nside: int, cells: np.ndarray, step: int = 4) -> dict:
    """The GeoJSON ``MultiPolygon`` covering the NESTED ``cells`` of ``nside``."""
    polys = [shapely.set_precision(p, _GRID) for c in cells for p in _cell_polygons(nside, c, step)]
    merged = shapely.union_all(polys) if polys else MultiPolygon()
    parts = [g for g in getattr(merged, "geoms", [merged]) if isinstance(g, Polygon) and not g.is_empty]
    return mapping(MultiPolygon([orient(p, sign=1.0) for p in parts]))
