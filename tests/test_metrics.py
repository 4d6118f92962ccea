import math

import pytest
import torch

from globeflow.evaluation.metrics import MAX_DISTANCE_KM, distances_km, geoscore, point_metrics

R = 6371.0


def test_hand_computed_cases():
    true = torch.tensor([[0.0, 0.0], [90.0, 0.0], [0.0, 179.9], [48.85, 2.35]], dtype=torch.float64)
    pred = torch.tensor([[0.0, 180.0], [-90.0, 0.0], [0.0, -179.9], [48.85, 2.35]], dtype=torch.float64)
    d = distances_km(pred, true)
    expected = torch.tensor([math.pi * R, math.pi * R, R * math.radians(0.2), 0.0], dtype=torch.float64)
    assert torch.allclose(d, expected, atol=1e-6)
    m = point_metrics(pred, true)
    gs = [5000 * math.exp(-x / 1492.7) for x in expected.tolist()]
    assert m["geoscore"] == pytest.approx(sum(gs) / 4)
    assert m["mean_km"] == pytest.approx(expected.mean().item())
    # Median of four values is the mean of the middle two.
    srt = sorted(expected.tolist())
    assert m["median_km"] == pytest.approx((srt[1] + srt[2]) / 2)
    assert m["acc_1km"] == 0.25 and m["acc_25km"] == 0.5 and m["acc_2500km"] == 0.5
    assert m["n"] == 4 and m["n_invalid"] == 0


def test_nan_prediction_is_a_miss_not_dropped():
    true = torch.tensor([[10.0, 10.0], [20.0, 20.0]])
    good = point_metrics(true.clone(), true)
    pred = true.clone()
    pred[1, 0] = float("nan")
    bad = point_metrics(pred, true)
    assert good["acc_1km"] == 1.0 and bad["acc_1km"] == 0.5
    assert bad["n"] == 2 and bad["n_invalid"] == 1
    assert bad["geoscore"] == pytest.approx(2500.0)
    assert bad["mean_km"] == pytest.approx(MAX_DISTANCE_KM / 2)


def test_out_of_range_prediction_is_invalid():
    true = torch.tensor([[0.0, 0.0]])
    assert point_metrics(torch.tensor([[95.0, 0.0]]), true)["n_invalid"] == 1


def test_geoscore_closed_form():
    assert geoscore(torch.tensor([0.0])).item() == 5000.0
    assert geoscore(torch.tensor([1492.7])).item() == pytest.approx(5000 / math.e)


def test_errors():
    with pytest.raises(ValueError, match="empty"):
        point_metrics(torch.zeros(0, 2), torch.zeros(0, 2))
    with pytest.raises(ValueError, match="must both be"):
        point_metrics(torch.zeros(3, 2), torch.zeros(2, 2))
    with pytest.raises(ValueError, match="ground-truth"):
        point_metrics(torch.zeros(1, 2), torch.tensor([[float("nan"), 0.0]]))
