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
