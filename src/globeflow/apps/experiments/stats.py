"""The few statistics the report's answers rest on: per-row GeoScores, means with standard errors,
paired differences, and when a difference counts as measured."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

from ...geo.distance import geoscore

__all__ = ["geoscores", "mean_se", "paired", "measurable", "Z"]

#: A difference is *measured* when it exceeds this many standard errors (about 95% two-sided).
Z = 2.0


def geoscores(errors_km: Sequence[float] | np.ndarray) -> np.ndarray:
    """Per-row GeoScore ``5000 exp(-d / 1492.7)`` of errors ``(N,)`` km."""
    return geoscore(torch.as_tensor(np.asarray(errors_km, dtype=np.float64))).numpy()


def mean_se(x: Sequence[float] | np.ndarray) -> tuple[float, float]:
    """Mean and its standard error (``std / sqrt(n)``, ddof 1; 0 for one value)."""
    a = np.asarray(x, dtype=np.float64)
    return float(a.mean()), float(a.std(ddof=1) / math.sqrt(a.size)) if a.size > 1 else 0.0


def paired(a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray) -> tuple[float, float]:
    """Mean of ``a - b`` over the same rows and its standard error: the comparison of two models on
    one test set, with the rows' shared difficulty cancelled."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"paired values need the same rows, got {a.shape} and {b.shape}")
    return mean_se(a - b)


def measurable(diff: float, se: float) -> bool:
    """Whether ``diff`` is more than :data:`Z` standard errors from zero."""
    return abs(diff) > Z * se
