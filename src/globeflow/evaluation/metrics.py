"""Geolocation metrics on (lat, lon) degrees, vectorised and NaN-safe.

A prediction that is NaN, infinite or out of range is never dropped: it counts as a miss at every
threshold, contributes a GeoScore of 0 and the worst possible distance (half the circumference,
20,015 km) to the mean and median, and is counted in ``n_invalid``.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

# The distance scales live with the sphere (the answers and pictures use them too); re-exported here
# because they are what the metrics are made of.
from ..geo.distance import GEOSCORE_SCALE_KM, MAX_DISTANCE_KM, THRESHOLDS_KM, distances_km, geoscore, valid_latlon

__all__ = ["GEOSCORE_SCALE_KM", "THRESHOLDS_KM", "MAX_DISTANCE_KM", "valid_latlon", "distances_km",
           "geoscore", "point_metrics"]


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
