"""Calibration of credible regions: does the p-credible region hold the truth a fraction p of the time?

The p-credible region of a density ``q`` is its highest-density region ``R_p = {x : q(x) >= t_p}``
holding mass p. A true location ``y`` lies in ``R_p`` exactly when the mass *denser* than it,

    u(y) = Q({x : q(x) > q(y)}),

is below p. For a calibrated model (``y ~ q``), ``u(y)`` is uniform on [0, 1], so the coverage
``P(u <= p)`` equals p at every level. ``u`` needs no grid: with ``S`` model samples ``x_s`` and their
exact log-densities (one forward solve, :meth:`Locator.sample_with_log_prob`), the rank
``r = #{s : q(x_s) > q(y)}`` is uniform on ``{0..S}`` under calibration (exchangeability), and the
randomised rank ``u = (r + V (ties + 1)) / (S + 1)``, ``V ~ U[0, 1]``, is exactly uniform. So the
coverage estimate carries no resolution or finite-``S`` bias, only the binomial noise of ``N`` rows.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from ..data.embeddings import EmbeddingDataset
from ..inference.calibration import Recalibration
from ..inference.locator import Locator
from ..io.files import file_sha256

__all__ = ["LEVELS", "hpd_ranks", "coverage", "calibration_summary", "density_dataset", "recalibrated_summary",
           "fit_recalibration"]

#: Nominal levels reported by default: 0.1, 0.2, ..., 0.9.
LEVELS = tuple(round(0.1 * i, 1) for i in range(1, 10))


def hpd_ranks(log_prob_true: np.ndarray, log_prob_samples: np.ndarray, *, seed: int = 0) -> np.ndarray:
    """Randomised highest-density ranks ``u (N,)`` in [0, 1].

    Args:
        log_prob_true: ``(N,)`` model log-density at each true location.
        log_prob_samples: ``(N, S)`` model log-densities of ``S`` samples for the same rows.
        seed: for the tie-breaking uniforms (deterministic output).
    """
    lt = np.asarray(log_prob_true, dtype=np.float64)
    ls = np.asarray(log_prob_samples, dtype=np.float64)
    if ls.ndim != 2 or lt.shape != ls.shape[:1]:
        raise ValueError(f"expected log_prob_true (N,) and log_prob_samples (N, S), got {lt.shape} and {ls.shape}")
    if not (np.isfinite(lt).all() and np.isfinite(ls).all()):
        raise ValueError("log-densities must be finite")
    denser = (ls > lt[:, None]).sum(axis=1)
    ties = (ls == lt[:, None]).sum(axis=1)
    v = np.random.default_rng(seed).random(lt.shape[0])
    return (denser + v * (ties + 1)) / (ls.shape[1] + 1)


def coverage(u: np.ndarray, levels: Sequence[float] = LEVELS) -> np.ndarray:
    """Fraction of rows whose truth lies in the p-credible region, for each level p: ``(L,)``."""
    u = np.asarray(u, dtype=np.float64)
    if u.size == 0:
        raise ValueError("coverage needs at least one row")
    return np.array([float(np.mean(u <= p)) for p in levels])


def calibration_summary(u: np.ndarray, levels: Sequence[float] = LEVELS, *, samples_per_row: int | None = None) -> dict:
    """Coverage per level with binomial standard errors, and the mean and worst absolute gaps."""
    u = np.asarray(u, dtype=np.float64)
    cov = coverage(u, levels)
    n = int(u.size)
    gaps = np.abs(cov - np.asarray(levels))
    return {
        "levels": list(levels),
        "coverage": [float(c) for c in cov],
        "stderr": [math.sqrt(p * (1 - p) / n) for p in levels],
        "mean_abs_gap": float(gaps.mean()),
        "max_abs_gap": float(gaps.max()),
        "n": n,
        "samples_per_row": samples_per_row,
        "method": "highest-density credible regions; truth inside when the model mass denser than it is <= p, "
                  "estimated by its randomised rank among samples with exact log-densities",
    }


def density_dataset(geolocator: Locator, dataset: EmbeddingDataset, *, batch_size: int = 256,
                    progress: bool = True, calibration_samples: int = 64, steps: int = 16, guidance: float = 0.0,
                    seed: int = 0) -> dict[str, Any]:
    """Per row: the log-density at the true location and, with ``calibration_samples > 0``, its
    randomised highest-density rank among that many model samples (see :func:`hpd_ranks`)."""
    ids: list = []
    lps, ranks = [], []
    for i, batch in enumerate(dataset.iter_batches(batch_size, progress=progress)):
        ids.extend(batch.ids)
        lp = geolocator.log_prob(batch.embedding, batch.latlon, steps=steps, guidance=guidance, seed=seed + i).numpy()
        lps.append(lp)
        if calibration_samples > 0:
            _, ls = geolocator.sample_with_log_prob(batch.embedding, calibration_samples, steps=steps, guidance=guidance,
                                                    seed=seed + i)
            ranks.append(hpd_ranks(lp, ls.numpy(), seed=seed + i))
    if not lps:
        raise ValueError(f"{dataset.path}: no valid rows")
    return {"id": ids, "log_prob": np.concatenate(lps), "hpd_rank": np.concatenate(ranks) if ranks else None}


def recalibrated_summary(u: np.ndarray, recal: Recalibration, levels: Sequence[float] = LEVELS) -> dict:
    """:func:`calibration_summary` of the recalibrated regions: the p region holds the truth when
    ``u <= recal.level(p)``; also the model levels used and what the recalibration was fitted on."""
    u = np.asarray(u, dtype=np.float64)
    q = np.array([recal.level(p) for p in levels])
    cov = np.array([float(np.mean(u <= x)) for x in q])
    gaps = np.abs(cov - np.asarray(levels))
    return {"levels": list(levels), "map_levels": [float(x) for x in q], "coverage": [float(c) for c in cov],
            "mean_abs_gap": float(gaps.mean()), "max_abs_gap": float(gaps.max()), "n": int(u.size),
            "recalibration": recal.describe()}


def fit_recalibration(geolocator: Locator, dataset: EmbeddingDataset, *, calibration_samples: int = 64,
                      batch_size: int = 256, progress: bool = True, seed: int = 0) -> tuple[Recalibration, np.ndarray]:
    """The conformal recalibration of ``geolocator``'s credible levels on a labelled ``dataset``, and
    the rows' HPD ranks ``(n,)`` (its model's own, before recalibration)."""
    if calibration_samples < 1:
        raise ValueError(f"calibration_samples must be >= 1, got {calibration_samples}")
    geolocator.require_density()
    dens = density_dataset(geolocator, dataset, batch_size=batch_size, progress=progress,
                           calibration_samples=calibration_samples, seed=seed)
    weights = geolocator.source.get("path")
    if not weights:
        raise ValueError("the model has no weights file on record to bind the calibration to")
    recal = Recalibration.fit(dens["hpd_rank"], data=str(dataset.path), samples_per_row=calibration_samples,
                              weights_sha256=file_sha256(weights))
    return recal, dens["hpd_rank"]
