"""Data the page draws, served by the app: country outlines from the offline Natural Earth polygons."""

from __future__ import annotations

import functools
import json

import numpy as np
import shapely

from ...geo.places import country_name, country_outlines, known_country_codes

__all__ = ["world_outlines_json", "countries_json"]


@functools.lru_cache(maxsize=None)
def world_outlines_json(tolerance_deg: float = 0.1, digits: int = 2) -> bytes:
    """Every country ring as ``[[lon, lat], ...]``, simplified to ``tolerance_deg`` (a few hundred KB
    instead of the 1:10m data's tens of MB), JSON bytes, built once per process."""
    rings = []
    for ring in country_outlines():
        line = shapely.simplify(shapely.LineString(ring), tolerance_deg)
        coords = np.round(np.asarray(line.coords), digits)
        if len(coords) >= 3:
            rings.append(coords.tolist())
    return json.dumps({"type": "rings", "crs": "lon/lat degrees", "rings": rings}, separators=(",", ":")).encode()


@functools.lru_cache(maxsize=None)
def countries_json() -> bytes:
    """The countries a constraint may name, ``[{"code", "name"}]`` sorted by name, JSON bytes."""
    rows = sorted(({"code": c, "name": country_name(c)} for c in known_country_codes()), key=lambda r: r["name"])
    return json.dumps({"countries": rows}, separators=(",", ":")).encode()
