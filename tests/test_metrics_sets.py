"""Precision, recall, density and coverage on the sphere: hand-computed cases and a brute-force reference."""

from __future__ import annotations

import math

import numpy as np
import pytest

from globeflow.evaluation import sets as metrics_sets
from globeflow.evaluation.sets import prdc


def _haversine_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Great-circle distances ``(len(a), len(b))`` in km, written out independently of the module."""
    la1, lo1 = np.radians(a[:, None, 0]), np.radians(a[:, None, 1])
    la2, lo2 = np.radians(b[None, :, 0]), np.radians(b[None, :, 1])
    h = np.sin((la2 - la1) / 2) ** 2 + np.cos(la1) * np.cos(la2) * np.sin((lo2 - lo1) / 2) ** 2
    return 2 * 6371.0 * np.arcsin(np.sqrt(np.clip(h, 0, 1)))


def _brute_prdc(pred: np.ndarray, true: np.ndarray, k: int) -> dict[str, float]:
    """Naeem et al.'s reference formulas on full distance matrices (all predictions valid)."""
    r_true = np.sort(_haversine_matrix(true, true), axis=1)[:, k]
    r_pred = np.sort(_haversine_matrix(pred, pred), axis=1)[:, k]
    d = _haversine_matrix(true, pred)  # (N, M)
    return {
        "precision": (d < r_true[:, None]).any(axis=0).mean(),
        "recall": (d < r_pred[None, :]).any(axis=1).mean(),
        "density": (d < r_true[:, None]).sum(axis=0).mean() / k,
        "coverage": (d.min(axis=1) < r_true).mean(),
    }


def _cluster(rng: np.random.Generator, n: int, lat: float, lon: float, spread: float) -> np.ndarray:
    return np.stack((lat + spread * rng.standard_normal(n), lon + spread * rng.standard_normal(n)), axis=-1)


def test_all_names_importable():
    for name in metrics_sets.__all__:
        assert hasattr(metrics_sets, name)


@pytest.mark.parametrize("k", [1, 3, 5])
def test_identical_sets(k):
    rng = np.random.default_rng(0)
    x = _cluster(rng, 200, 45.0, 10.0, 5.0)
    out = prdc(x, x.copy(), k=k)
    assert out["precision"] == 1.0 and out["recall"] == 1.0 and out["coverage"] == 1.0
    # Strict balls and no ties: each true ball holds its centre and its k - 1 nearer neighbours, so
    # sum over predictions of (balls containing it) = k N, and density = k N / (k N) = 1.
    assert out["density"] == pytest.approx(1.0, abs=1e-12)
    assert out["density"] == pytest.approx(_brute_prdc(x, x, k)["density"], abs=1e-12)


def test_antipodal_predictions_score_zero():
    rng = np.random.default_rng(1)
    true = _cluster(rng, 100, 40.0, -100.0, 3.0)
    pred = np.stack((-true[:, 0], true[:, 1] + 180.0), axis=-1)  # antipodes, lon in [-180, 180]
    pred[:, 1] = np.where(pred[:, 1] > 180, pred[:, 1] - 360, pred[:, 1])
    out = prdc(pred, true)
    assert out == {"precision": 0.0, "recall": 0.0, "density": 0.0, "coverage": 0.0,
                   "k": 3, "n": 100, "n_true": 100, "n_invalid": 0}


# On the equator, great-circle distance is proportional to the longitude difference, so the example
# below can be worked out in degrees. k = 1.
#   true lons 0, 1, 3, 10     -> radii (1st other neighbour) 1, 1, 2, 7
#   pred lons 0.5, 2.2, 20, 29 -> radii 1.7, 1.7, 9, 9
#   true balls holding each prediction (d < r):
#     0.5 -> {0 (0.5 < 1), 1 (0.5 < 1)};  2.2 -> {3 (0.8 < 2)} (1.2 !< 1 for lon 1);
#     20 -> {} (10 !< 7);  29 -> {}
#   precision = 2/4;  density = (2 + 1 + 0 + 0) / (1 * 4) = 0.75
#   coverage: balls 0, 1, 3 hold a prediction, ball 10 (r 7) does not (nearest is 2.2 at 7.8) -> 3/4
#   recall: true 0, 1 lie in ball 0.5 (r 1.7), 3 in ball 2.2 (0.8 < 1.7); 10 is in none
#     (20 with r 9 is 10 away, 2.2 with r 1.7 is 7.8 away) -> 3/4
EQ_TRUE = np.array([[0.0, 0.0], [0.0, 1.0], [0.0, 3.0], [0.0, 10.0]])
EQ_PRED = np.array([[0.0, 0.5], [0.0, 2.2], [0.0, 20.0], [0.0, 29.0]])


def test_equator_by_hand():
    out = prdc(EQ_PRED, EQ_TRUE, k=1)
    assert out["precision"] == pytest.approx(0.5)
    assert out["density"] == pytest.approx(0.75)
    assert out["coverage"] == pytest.approx(0.75)
    assert out["recall"] == pytest.approx(0.75)
    assert out["n_invalid"] == 0


def test_nan_predictions_are_misses_not_dropped():
    pred = np.vstack((EQ_PRED, [[math.nan, math.nan], [0.0, math.nan], [95.0, 0.0]]))
    out = prdc(pred, EQ_TRUE, k=1)
    # Same hits as by hand, over 7 predictions instead of 4; invalid rows have no ball, so recall
    # and coverage do not move.
    assert out["n"] == 7 and out["n_invalid"] == 3
    assert out["precision"] == pytest.approx(2 / 7)
    assert out["density"] == pytest.approx(3 / 7)
    assert out["coverage"] == pytest.approx(0.75)
    assert out["recall"] == pytest.approx(0.75)


def test_all_invalid_predictions():
    out = prdc(np.full((5, 2), math.nan), EQ_TRUE, k=1)
    assert (out["precision"], out["recall"], out["density"], out["coverage"]) == (0.0, 0.0, 0.0, 0.0)
    assert out["n_invalid"] == 5


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_brute_force(seed):
    rng = np.random.default_rng(seed)
    true = np.vstack((_cluster(rng, 150, 48.0, 2.0, 4.0), _cluster(rng, 100, -33.0, 151.0, 6.0)))
    # Predictions: part of one mode, shifted, plus a mode that is not in the data; across the antimeridian too.
    pred = np.vstack((_cluster(rng, 120, 49.0, 3.0, 5.0), _cluster(rng, 60, -17.0, 179.5, 1.0)))
    pred[:, 1] = (pred[:, 1] + 180.0) % 360.0 - 180.0
    out, ref = prdc(pred, true, k=3), _brute_prdc(pred, true, 3)
    for key, value in ref.items():
        assert out[key] == pytest.approx(value, abs=1e-12), key
    assert 0.0 < out["precision"] < 1.0 and 0.0 < out["coverage"] < 1.0


@pytest.mark.parametrize("pred, true, k, match", [
    (np.zeros((3, 3)), EQ_TRUE, 1, "shape"),
    (EQ_PRED, EQ_TRUE, 4, "more than k"),
    (EQ_PRED, np.vstack((EQ_TRUE, [[math.nan, 0.0]])), 1, "invalid"),
    (np.zeros((0, 2)), EQ_TRUE, 1, "no predictions"),
    (EQ_PRED, EQ_TRUE, 0, "k must be"),
])
def test_bad_inputs(pred, true, k, match):
    with pytest.raises(ValueError, match=match):
        prdc(pred, true, k=k)
