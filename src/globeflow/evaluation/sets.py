"""Precision, recall, density and coverage of a predicted location set (Naeem et al. 2020).

"Reliable Fidelity and Diversity Metrics for Generative Models" (ICML 2020), with great-circle
distance on the sphere. With ``k`` nearest neighbours:

* the ball of a true point has radius its distance to its ``k``-th nearest other true point, the
  ball of a prediction its distance to its ``k``-th nearest other (valid) prediction;
* precision: fraction of the ``M`` predictions inside at least one true ball;
* recall: fraction of the ``N`` true points inside at least one prediction ball;
* density: ``(1 / (k M)) * sum over predictions of the number of true balls containing it``;
* coverage: fraction of true points whose ball contains at least one prediction.

"Inside" is strict (``d < r``), as in the authors' reference code: then for two identical sets
without ties every ball holds exactly ``k`` points (its centre and ``k - 1`` nearer neighbours),
and density is exactly 1.

Points are unit vectors and the K-D tree works with chord lengths, which are monotone in the
great-circle distance, so every comparison is the great-circle one.

An invalid prediction (NaN, infinite or out of range) is in no ball and has no ball: it counts in
``M`` (lowering precision and density), does not help recall or coverage, and is counted in
``n_invalid``. With fewer than ``k + 1`` valid predictions their balls are undefined and recall is 0.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from scipy.spatial import cKDTree

__all__ = ["prdc"]


def _xyz(latlon: np.ndarray) -> np.ndarray:
    """``(N, 2)`` degrees -> ``(N, 3)`` unit vectors."""
    la, lo = np.radians(latlon[:, 0]), np.radians(latlon[:, 1])
    return np.stack((np.cos(la) * np.cos(lo), np.cos(la) * np.sin(lo), np.sin(la)), axis=-1)


def _valid_rows(latlon: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        return np.isfinite(latlon).all(axis=1) & (np.abs(latlon[:, 0]) <= 90) & (np.abs(latlon[:, 1]) <= 180)


def _kth_radius(tree: cKDTree, points: np.ndarray, k: int) -> np.ndarray:
    """Chord to the ``k``-th nearest other point of the tree ``(N,)``; a point's own zero is skipped."""
    d, _ = tree.query(points, k=k + 1)
    return d[:, k]


def _ball_members(centres: np.ndarray, radii: np.ndarray, tree: cKDTree) -> list[list[int]]:
    """For each ball, the tree points strictly inside it (``chord < radius``)."""
    # query_ball_point includes the boundary; the largest float below r makes it strict.
    strict = np.nextafter(radii, 0.0)
    members = tree.query_ball_point(centres, strict)
    return [m if r > 0 else [] for m, r in zip(members, radii)]


def prdc(pred: np.ndarray, true: np.ndarray, k: int = 3) -> dict[str, float]:
    """Precision, recall, density and coverage of ``pred`` against ``true``.

    Args:
        pred: ``(M, 2)`` predicted (lat, lon) degrees; invalid rows are allowed (see module doc).
        true: ``(N, 2)`` true (lat, lon) degrees, all valid, ``N > k``.
        k: number of nearest neighbours that sets each ball's radius.

    Returns:
        ``precision``, ``recall``, ``density``, ``coverage`` (density in [0, N / k], the others in
        [0, 1]), ``k``, ``n`` (M), ``n_true`` (N) and ``n_invalid``.
    """
    p = np.asarray(pred, dtype=np.float64)
    t = np.asarray(true, dtype=np.float64)
    for a, what in ((p, "pred"), (t, "true")):
        if a.ndim != 2 or a.shape[1] != 2:
            raise ValueError(f"{what} must have shape (rows, 2) as (lat, lon) in degrees, got shape {a.shape}")
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    m, n = len(p), len(t)
    if m == 0:
        raise ValueError("no predictions to evaluate (pred has shape (0, 2))")
    if n <= k:
        raise ValueError(f"true needs more than k = {k} points to define k-NN balls, got {n}")
    bad = ~_valid_rows(t)
    if bad.any():
        raise ValueError(f"true has {int(bad.sum())} invalid row(s) (NaN or out of range), "
                         f"first at row {int(np.flatnonzero(bad)[0])}")
    from scipy.spatial import cKDTree  # ~0.4 s to import: loaded by the first evaluation, not the CLI

    ok = _valid_rows(p)
    pv, tv = _xyz(p[ok]), _xyz(t)
    true_tree = cKDTree(tv)
    true_radius = _kth_radius(true_tree, tv, k)

    inside_true = _ball_members(tv, true_radius, cKDTree(pv)) if len(pv) else [[] for _ in range(n)]
    counts = np.array([len(s) for s in inside_true], dtype=np.int64)  # (N,) valid predictions per true ball
    hit = np.zeros(len(pv), dtype=bool)
    if counts.sum():
        hit[np.concatenate([np.asarray(s, dtype=np.int64) for s in inside_true])] = True

    recall = 0.0
    if len(pv) > k:
        pred_radius = _kth_radius(cKDTree(pv), pv, k)
        covered = np.zeros(n, dtype=bool)
        members = _ball_members(pv, pred_radius, true_tree)
        if any(members):
            covered[np.concatenate([np.asarray(s, dtype=np.int64) for s in members])] = True
        recall = float(covered.mean())
    return {
        "precision": float(hit.sum() / m),
        "recall": recall,
        "density": float(counts.sum() / (k * m)),
        "coverage": float((counts > 0).mean()),
        "k": k,
        "n": m,
        "n_true": n,
        "n_invalid": int((~ok).sum()),
    }
