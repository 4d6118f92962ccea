"""Answers from a model density: normalised maps, point strategies, localizability, full reports."""

import math

import numpy as np
import pytest
import torch
from helpers import random_geolocator

from globeflow import geo
from globeflow.geo import EARTH_RADIUS_KM
from globeflow.inference.answers import AnswerConfig, answer_images, localizability
from globeflow.inference.density import MapConfig


@pytest.fixture(scope="module")
def geolocator():
    return random_geolocator()


EMB = torch.tensor([[0.5, -1.0, 0.3], [-0.7, 0.2, 1.1]])
SMALL = MapConfig(nside=16, start_nside=4, max_cells=64)


@pytest.mark.parametrize("guidance", [0.0, 2.0])
def test_model_density_maps_are_normalised_and_agree_with_log_prob(geolocator, guidance):
    maps = geolocator.density_maps(EMB, SMALL, steps=16, guidance=guidance, num_samples=64)
    for b, m in enumerate(maps):
        assert abs(m.mass() - 1.0) < 0.01, m.mass()
        assert m.log_density.max() - m.log_density.min() > 0.5  # not a trivial (uniform) density
        # Cells marked exact hold the log-density of their own centre.
        exact = np.flatnonzero(m.evaluated_nside == 16)[:5]
        lp = geolocator.log_prob(EMB[b:b + 1].expand(len(exact), -1), m.centers_latlon(exact), steps=16, guidance=guidance)
        assert np.allclose(m.log_density[exact], lp.numpy(), atol=1e-4)


def test_point_strategies_mode_and_grid(geolocator):
    latlon, logp = geolocator.sample_with_log_prob(EMB, 32, steps=8, seed=3)
    assert latlon.shape == (2, 32, 2) and logp.shape == (2, 32)
    mode = geolocator.predict(EMB, strategy="mode", num_samples=32, steps=8, seed=3)
    assert torch.allclose(mode, latlon[torch.arange(2), logp.argmax(1)])
    # Each sample's density from the forward solve is its density by the backward solve, up to the
    # two discretisations' error.
    fwd_ll, fwd_lp = geolocator.sample_with_log_prob(EMB[:1], 32, steps=32, seed=3)
    back = geolocator.log_prob(EMB[:1].expand(32, -1), fwd_ll[0], steps=32)
    assert torch.allclose(back, fwd_lp[0], atol=0.05) and (back - fwd_lp[0]).abs().mean() < 0.01
    grid = geolocator.predict(EMB, strategy="grid", steps=8)
    assert grid.shape == (2, 2)
    with pytest.raises(ValueError, match="units must be"):
        geolocator.sample_with_log_prob(EMB, 4, units="m2")


def test_localizability_closed_forms():
    uniform = localizability(np.full(100, -math.log(4 * math.pi)))
    assert uniform["bits"] == pytest.approx(0.0, abs=1e-12)
    assert uniform["effective_area_km2"] == pytest.approx(4 * math.pi * EARTH_RADIUS_KM ** 2)
    # A density uniform on a cap of 1/1024 of the sphere: log p = log(1024 / 4 pi): exactly 10 bits.
    cap = localizability(np.full(10, math.log(1024 / (4 * math.pi))))
    assert cap["bits"] == pytest.approx(10.0)
    with pytest.raises(ValueError, match="at least 2 finite"):
        localizability(np.array([np.nan, 1.0]))


def test_answer_report_is_consistent(geolocator):
    cfg = AnswerConfig(num_samples=64, steps=8, solver="rk4", error_check=4, top_k=3, map=SMALL)
    truth = np.array([[48.85, 2.35], [-33.9, 151.2]])
    results = answer_images(geolocator, EMB, truth=truth, config=cfg)
    assert len(results) == 2
    for (report, dmap), t in zip(results, truth):
        assert report["units"] == "nats/sr"
        areas = [c["area_km2"] for c in report["credible_regions"]]
        assert areas == sorted(areas) and [c["level"] for c in report["credible_regions"]] == [0.5, 0.9, 0.95]
        total = sum(c["probability"] for c in report["countries"])
        assert total <= 1.0 + 1e-9
        assert 1 <= len(report["top_k"]) <= 3
        # Basins are disjoint; discs of 200 km around places 250 km apart may overlap.
        assert sum(m["basin_probability"] for m in report["top_k"]) <= 1.0 + 1e-9
        assert all(0.0 <= m["probability"] <= m["within_km"]["750"] + 1e-12 <= 1.0 + 1e-9 for m in report["top_k"])
        assert report["map"]["densest_cells_error_nats"] >= 0 and isinstance(report["warnings"], list)
        for m in report["top_k"]:
            assert {"name", "country_code", "distance_km"} <= set(m["place"])
        tr = report["truth"]
        assert (tr["lat"], tr["lon"]) == tuple(t)
        assert tr["inside"] == {str(p): tr["credible_level"] < p for p in (0.5, 0.9, 0.95)}
        assert report["best_guess"]["error_km"] >= 0
        assert report["map"]["nside"] == 16 and abs(report["map"]["mass"] - 1) < 0.02
        # The localizability agrees with the grid entropy of the same density (both in nats/sr).
        loc = report["localizability"]
        se = loc["bits_stderr"] * math.log(2.0)
        assert abs(loc["entropy_nats"] - dmap.entropy()) < 4 * se + 0.05, (loc, dmap.entropy())


def test_answer_from_a_sample_map_reads_its_numbers_off_the_samples(geolocator):
    # With the map estimated from the samples (no solves on the grid), each number comes from the
    # samples' exact densities, not from the smoothed map: areas and edges are the samples' HPD
    # region, a place's probability is the samples' share within the radius, and the truth's
    # credible level is the share of samples denser than it (the HPD rank of calibration).
    from globeflow.inference.density import hpd_region

    cfg = AnswerConfig(num_samples=200, steps=8, solver="rk4", error_check=4, top_k=2,
                       map=MapConfig(nside=16, source="samples"))
    truth = np.array([[48.85, 2.35], [-33.9, 151.2]])
    answers = geolocator.answer(EMB, truth=truth, config=cfg)
    for a in answers:
        dmap = a.density_map
        assert dmap.source == "samples" and a.map["source"] == "samples" and a.map["exact_cells"] == 0
        assert abs(a.map["mass"] - 1.0) < 1e-9 and a.map["densest_cells_error_nats"] is None
        assert a.map["samples_error_nats"] >= 0
        for r in a.credible_regions:
            t, area = hpd_region(a.log_probs, r.level)
            assert r.area_km2 == pytest.approx(area * EARTH_RADIUS_KM ** 2) and r.threshold_log_density == t
        for place in a.top_k:
            d = geo.haversine_km(torch.as_tensor(a.samples, dtype=torch.float64),
                                 torch.tensor([place.lat, place.lon], dtype=torch.float64).expand(200, 2))
            assert place.probability == pytest.approx(float((d <= 200.0).double().mean()))
        assert a.truth.credible_level == pytest.approx(float(np.mean(a.log_probs > a.truth.log_density)))
