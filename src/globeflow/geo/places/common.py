"""What the place modules share: the area levels, :class:`Place`, coordinate checks, country names."""

from __future__ import annotations

import functools
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch

from ..distance import haversine_km

__all__ = ["LEVELS", "SEA_KEY", "SEA_NAME", "KEY_SEPARATOR", "Place", "country_name"]

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
