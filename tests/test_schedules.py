import math

import pytest
import torch

from globeflow.flow.schedules import GAMMA_MIN, Schedule, ScheduleConfig, make_schedule

pytestmark = pytest.mark.usefixtures("float64")


@pytest.mark.parametrize("name", ["sigmoid", "linear", "cosine"])
def test_derivative_matches_finite_differences(name):
    s = make_schedule(name)
    t = torch.linspace(0.01, 0.99, 99)
    h = 1e-6
    fd = (s._gamma(t + h) - s._gamma(t - h)) / (2 * h)
    assert torch.allclose(s.derivative(t), fd, atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("name", ["sigmoid", "linear", "cosine"])
def test_endpoints_and_monotone(name):
    s = make_schedule(name)
    t = torch.linspace(0, 1, 1001)
    g = s(t)
    assert g[0] == 1.0 and g[-1] == GAMMA_MIN
    assert (g[1:] <= g[:-1]).all()
    assert (s.derivative(t[1:-1]) < 0).all()


def test_sigmoid_closed_form_value():
    s = Schedule(ScheduleConfig("sigmoid", start=-7, end=3, tau=1))
    sig = lambda z: 1 / (1 + math.exp(-z))
    t = 0.7  # argument (t (e - s) + s) = 0, so sigmoid = 1/2
    expected = (sig(3) - 0.5) / (sig(3) - sig(-7))
    assert abs(s(torch.tensor(t)).item() - expected) < 1e-12


def test_sampling_grid_goes_noise_to_data():
    g = make_schedule("sigmoid").sampling_grid(8)
    assert g.shape == (9,)
    assert g[0] == GAMMA_MIN and g[-1] == 1.0
    assert (g[1:] > g[:-1]).all()


def test_bad_configs_are_rejected():
    with pytest.raises(ValueError, match="unknown schedule 'quadratic'"):
        make_schedule("quadratic")
    with pytest.raises(ValueError, match="end > start"):
        Schedule(ScheduleConfig("sigmoid", start=3, end=-7))
    with pytest.raises(ValueError, match="steps must be >= 1"):
        make_schedule().sampling_grid(0)
