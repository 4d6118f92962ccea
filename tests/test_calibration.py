"""Credible-region calibration from randomised highest-density ranks."""

import math

import numpy as np
import pytest

from globeflow.evaluation.calibration import LEVELS, calibration_summary, coverage, hpd_ranks


def gaussian_logpdf(x, scale):
    return -0.5 * (x / scale) ** 2 - math.log(scale)


def ranks_for(truth_scale, model_scale=1.0, n=4000, s=64, seed=0):
    """Model N(0, model_scale) in 1-D; truths drawn from N(0, truth_scale)."""
    rng = np.random.default_rng(seed)
    truth = rng.normal(scale=truth_scale, size=n)
    samples = rng.normal(scale=model_scale, size=(n, s))
    return hpd_ranks(gaussian_logpdf(truth, model_scale), gaussian_logpdf(samples, model_scale), seed=seed)


def test_a_calibrated_model_covers_each_level_at_its_nominal_rate():
    cov = coverage(ranks_for(1.0))
    se = math.sqrt(0.25 / 4000)
    assert np.abs(cov - np.array(LEVELS)).max() < 4 * se


def test_ranks_match_the_closed_form_hpd_mass():
    # For N(0, 1) the mass denser than x is P(|Z| < |x|) = erf(|x| / sqrt 2); many samples -> that value.
    x = np.array([0.1, 0.7, 1.5, 2.5])
    rng = np.random.default_rng(1)
    samples = rng.normal(size=(4, 200_000))
    u = hpd_ranks(gaussian_logpdf(x, 1.0), gaussian_logpdf(samples, 1.0))
    exact = np.array([math.erf(abs(v) / math.sqrt(2)) for v in x])
    assert np.abs(u - exact).max() < 0.005


def test_overconfident_and_underconfident_models_are_detected():
    over = coverage(ranks_for(truth_scale=2.0))  # truths wider than the model believes
    under = coverage(ranks_for(truth_scale=0.5))
    assert (over < np.array(LEVELS) - 0.05).all()
    assert (under[:-1] > np.array(LEVELS[:-1]) + 0.05).all()


def test_ties_are_spread_uniformly():
    # Every sample ties with the truth: the rank must be uniform on [0, 1], not stuck at 0 or 1.
    u = hpd_ranks(np.zeros(5000), np.zeros((5000, 9)))
    assert 0.0 <= u.min() and u.max() <= 1.0
    assert abs(u.mean() - 0.5) < 0.02 and abs(np.mean(u <= 0.3) - 0.3) < 0.03


def test_summary_and_errors():
    s = calibration_summary(ranks_for(1.0, n=1000), samples_per_row=64)
    assert s["levels"] == list(LEVELS) and len(s["coverage"]) == 9 and s["n"] == 1000
    assert s["max_abs_gap"] >= s["mean_abs_gap"] >= 0
    with pytest.raises(ValueError, match=r"\(N,\) and log_prob_samples \(N, S\)"):
        hpd_ranks(np.zeros(3), np.zeros((4, 2)))
    with pytest.raises(ValueError, match="finite"):
        hpd_ranks(np.array([np.nan]), np.zeros((1, 2)))
    with pytest.raises(ValueError, match="at least one row"):
        coverage(np.array([]))


# --- conformal recalibration ------------------------------------------------------------------------------------

from globeflow.inference.calibration import CALIBRATION_NAME, CalibrationError, Recalibration  # noqa: E402


def test_recalibrated_level_is_the_conformal_order_statistic():
    recal = Recalibration.fit(np.array([0.9, 0.1, 0.5, 0.3]), data="d", samples_per_row=8, weights_sha256="x")
    assert recal.ranks == (0.1, 0.3, 0.5, 0.9) and recal.rows == 4
    # k = ceil(5 p): p = 0.2 -> 1st, 0.5 -> 3rd, 0.8 -> 4th, 0.9 -> 5th > n -> the whole globe.
    assert [recal.level(p) for p in (0.2, 0.5, 0.8, 0.9)] == [0.1, 0.5, 0.9, 1.0]
    with pytest.raises(ValueError, match=r"credible level must be in \(0, 1\]"):
        recal.level(0.0)
    with pytest.raises(CalibrationError, match="ascending list of numbers in"):
        Recalibration((0.5, 0.2), "d", 8, "x")


@pytest.mark.parametrize("truth_scale", [2.5, 0.5])
def test_conformal_recalibration_restores_coverage_on_new_rows(truth_scale):
    # An over-confident (truths 2.5x wider) and an under-confident model: fitted on 2,000 rows, the
    # recalibrated regions hold new rows' truths at the nominal rate (finite-sample guarantee:
    # coverage >= p, and < p + 1/(n+1) in expectation), where the raw ones miss by far.
    def ranks(n, seed):  # the tie-breaking uniforms from their own stream, independent of the draws
        rng = np.random.default_rng(seed)
        truth, samples = rng.normal(scale=truth_scale, size=n), rng.normal(size=(n, 64))
        return hpd_ranks(gaussian_logpdf(truth, 1.0), gaussian_logpdf(samples, 1.0), seed=seed + 100)

    cal, test = ranks(2000, 1), ranks(20000, 2)
    recal = Recalibration.fit(cal, data="d", samples_per_row=64, weights_sha256="x")
    before = coverage(test, (0.5, 0.9))
    after = np.array([np.mean(test <= recal.level(p)) for p in (0.5, 0.9)])
    assert np.abs(before - [0.5, 0.9]).max() > 0.15
    assert np.abs(after - [0.5, 0.9]).max() < 0.04


def test_a_calibration_file_is_bound_to_its_weights(tmp_path):
    from globeflow.io import file_sha256

    weights = tmp_path / "checkpoint.safetensors"
    weights.write_bytes(b"weights")
    assert Recalibration.beside(weights) is None
    recal = Recalibration.fit(np.array([0.2, 0.7]), data="cal.parquet", samples_per_row=8,
                              weights_sha256=file_sha256(weights))
    recal.save(tmp_path)
    assert Recalibration.beside(weights) == recal
    weights.write_bytes(b"other weights")
    with pytest.raises(CalibrationError, match="fitted on other weights than checkpoint.safetensors"):
        Recalibration.beside(weights)
    (tmp_path / CALIBRATION_NAME).write_text("{not json")
    with pytest.raises(CalibrationError, match="not a readable calibration file"):
        Recalibration.beside(weights)
