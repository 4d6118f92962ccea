"""Distances on the Earth and the scales geolocation is judged at.

Great-circle distances in km on a sphere of radius 6371 km, the GeoScore kernel
``5000 exp(-d / 1492.7 km)``, and the accuracy thresholds of the field (1, 25, 200, 750, 2500 km).
A coordinate that is NaN, infinite or out of range is *invalid*: it has no distance, and
:func:`distances_km` gives it the largest possible one (half the circumference) so that it is
never dropped from a mean.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["EARTH_RADIUS_KM", "MAX_DISTANCE_KM", "GEOSCORE_SCALE_KM", "THRESHOLDS_KM", "haversine_km",
           "valid_latlon", "distances_km", "geoscore"]

EARTH_RADIUS_KM = 6371.0
#: Half the circumference: the farthest two points can be.
MAX_DISTANCE_KM = math.pi * EARTH_RADIUS_KM
#: Length scale of GeoScore (OSV-5M, PLONK).
GEOSCORE_SCALE_KM = 1492.7
#: Accuracy thresholds: street, city, region, country, continent.
THRESHOLDS_KM = (1, 25, 200, 750, 2500)


def haversine_km(latlon_a: Tensor, latlon_b: Tensor, radius: float = EARTH_RADIUS_KM) -> Tensor:
    """Great-circle distance in km between degrees ``(..., 2)`` and ``(..., 2)``.

    The haversine formula with its argument clamped to [0, 1], so rounding never yields NaN.
    """
    lat1, lon1 = torch.deg2rad(latlon_a[..., 0]), torch.deg2rad(latlon_a[..., 1])
    lat2, lon2 = torch.deg2rad(latlon_b[..., 0]), torch.deg2rad(latlon_b[..., 1])
    h = torch.sin((lat2 - lat1) / 2) ** 2 + torch.cos(lat1) * torch.cos(lat2) * torch.sin((lon2 - lon1) / 2) ** 2
    return 2.0 * radius * torch.asin(h.clamp(0.0, 1.0).sqrt())


def valid_latlon(latlon: Tensor) -> Tensor:
    """``(..., 2) -> (...)`` bool: finite, ``|lat| <= 90`` and ``|lon| <= 180``."""
    finite = torch.isfinite(latlon).all(dim=-1)
    in_range = (latlon[..., 0].abs() <= 90) & (latlon[..., 1].abs() <= 180)
    return finite & in_range


def distances_km(pred: Tensor, true: Tensor) -> Tensor:
    """Great-circle distances ``(N,)``; invalid predictions get :data:`MAX_DISTANCE_KM`."""
    ok = valid_latlon(pred)
    safe = torch.where(ok.unsqueeze(-1), pred, torch.zeros_like(pred))
    return torch.where(ok, haversine_km(safe, true), torch.full_like(ok, MAX_DISTANCE_KM, dtype=pred.dtype))


def geoscore(d_km: Tensor) -> Tensor:
    """Per-example GeoScore ``5000 exp(-d / 1492.7)`` in [0, 5000]."""
    return 5000.0 * torch.exp(-d_km / GEOSCORE_SCALE_KM)
