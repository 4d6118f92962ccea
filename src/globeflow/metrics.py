"""Geolocation metrics on (lat, lon) degrees, vectorised and NaN-safe.

A prediction that is NaN, infinite or out of range is never dropped: it counts as a miss at every
threshold, contributes a GeoScore of 0 and the worst possible distance (half the circumference,
20,015 km) to the mean and median, and is counted in ``n_invalid``.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from .geometry import EARTH_RADIUS_KM, haversine_km

__all__ = ["GEOSCORE_SCALE_KM", "THRESHOLDS_KM", "MAX_DISTANCE_KM", "valid_latlon", "distances_km",
           "geoscore", "point_metrics"]

GEOSCORE_SCALE_KM = 1492.7
THRESHOLDS_KM = (1, 25, 200, 750, 2500)
MAX_DISTANCE_KM = math.pi * EARTH_RADIUS_KM


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


def point_metrics(pred: Tensor, true: Tensor) -> dict[str, float]:
    """Aggregate metrics of point predictions ``pred (N, 2)`` against ``true (N, 2)`` degrees.

    Keys: ``n``, ``n_invalid``, ``geoscore``, ``mean_km``, ``median_km`` and ``acc_{t}km`` for
    ``t`` in :data:`THRESHOLDS_KM` (fractions in [0, 1]).
    """
    if pred.shape != true.shape or pred.dim() != 2 or pred.shape[-1] != 2:
        raise ValueError(f"predictions and truth must both be (N, 2); got {tuple(pred.shape)} and {tuple(true.shape)}")
    if not valid_latlon(true).all():
        raise ValueError("ground-truth coordinates contain NaN or out-of-range values")
    n = pred.shape[0]
    if n == 0:
        raise ValueError("no predictions to evaluate (empty dataset)")
    pred, true = pred.double(), true.double()
    d = distances_km(pred, true)
    invalid = ~valid_latlon(pred)
    out: dict[str, float] = {
        "n": n,
        "n_invalid": int(invalid.sum()),
        "geoscore": geoscore(d).where(~invalid, torch.zeros_like(d)).mean().item(),
        "mean_km": d.mean().item(),
        "median_km": float(np.median(d.cpu().numpy())),
    }
    for t in THRESHOLDS_KM:
        out[f"acc_{t}km"] = ((d <= t) & ~invalid).double().mean().item()
    return out
