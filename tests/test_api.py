import importlib
import pkgutil

import pytest
import torch

import globeflow
from globeflow import geo
from globeflow.flow import GeoFlowModel, ModelConfig
from globeflow.flow.network import NetworkConfig
from globeflow.inference import Geolocator
from globeflow.inference.points import best_expected_geoscore, expected_geoscore


def all_modules():
    yield globeflow
    for info in pkgutil.walk_packages(globeflow.__path__, "globeflow."):
        yield importlib.import_module(info.name)


@pytest.mark.parametrize("module", list(all_modules()), ids=lambda m: m.__name__)
def test_every_public_name_exists(module):
    assert hasattr(module, "__all__"), f"{module.__name__} has no __all__"
    for name in module.__all__:
        assert hasattr(module, name), f"{module.__name__}.{name}"


def model(seed=0):
    torch.manual_seed(seed)
    m = GeoFlowModel(ModelConfig(NetworkConfig(cond_dim=4, dim=16, depth=2)))
    for p in m.parameters():
        torch.nn.init.normal_(p, std=0.2)
    return m


def test_save_load_round_trip(tmp_path):
    g = Geolocator(model(), device="cpu")
    g.save(tmp_path / "m")
    h = Geolocator.load(tmp_path / "m", device="cpu")
    assert h.config == g.config
    emb = torch.randn(3, 4)
    assert torch.allclose(g.sample(emb, 5, steps=3), h.sample(emb, 5, steps=3))


def test_sample_and_predict_shapes_and_ranges():
    g = Geolocator(model(), device="cpu")
    s = g.sample(torch.randn(2, 4), 7, steps=2)
    assert s.shape == (2, 7, 2)
    assert (s[..., 0].abs() <= 90).all() and (s[..., 1].abs() <= 180).all()
    assert g.predict(torch.randn(4), num_samples=5, steps=2).shape == (1, 2)
    with pytest.raises(ValueError, match=r"shape \(B, 4\)"):
        g.predict(torch.randn(2, 3))
    with pytest.raises(ValueError, match="NaN"):
        g.predict(torch.full((1, 4), float("nan")))
    with pytest.raises(ValueError, match="unknown point strategy 'mean'"):
        g.predict(torch.randn(1, 4), strategy="mean")


def test_best_expected_geoscore_picks_the_dense_cluster():
    # Ten points near Paris and three scattered far away: the estimate must come from the cluster.
    paris = geo.latlon_to_xyz(torch.tensor([48.85, 2.35], dtype=torch.float64))
    cluster = geo.vmf_sample(paris, 5000.0, 10, generator=torch.Generator().manual_seed(0))
    far = geo.latlon_to_xyz(torch.tensor([[-33.0, 151.0], [40.0, -74.0], [-23.0, -46.0]], dtype=torch.float64))
    samples = torch.cat((far, cluster)).unsqueeze(0)
    best = best_expected_geoscore(samples)
    assert geo.dist(best, paris.unsqueeze(0)).item() * geo.EARTH_RADIUS_KM < 300
    # And it is the arg-max of the closed-form expected score among the candidates.
    scores = expected_geoscore(samples, samples)[0]
    assert torch.equal(best[0], samples[0, scores.argmax()])
    # Closed form for two points d km apart: (5000 + 5000 exp(-d / 1492.7)) / 2 each.
    two = geo.latlon_to_xyz(torch.tensor([[0.0, 0.0], [0.0, 10.0]], dtype=torch.float64)).unsqueeze(0)
    d = geo.EARTH_RADIUS_KM * torch.deg2rad(torch.tensor(10.0, dtype=torch.float64))
    assert torch.allclose(expected_geoscore(two, two), (2500 + 2500 * torch.exp(-d / 1492.7)).expand(1, 2))


def test_log_prob_of_a_zero_field_is_uniform_and_units_are_stated():
    import math

    m = model()
    torch.nn.init.zeros_(m.network.final_linear.weight)
    torch.nn.init.zeros_(m.network.final_linear.bias)
    g = Geolocator(m, device="cpu")
    latlon = torch.tensor([[0.0, 0.0], [90.0, 0.0], [-33.9, 179.99]])
    lp = g.log_prob(torch.randn(3, 4), latlon, steps=4)
    assert torch.allclose(lp, torch.full((3,), -math.log(4 * math.pi), dtype=torch.float64), atol=1e-6)
    km2 = g.log_prob(torch.randn(3, 4), latlon, steps=4, units="km2")
    assert torch.allclose(km2, lp - 2 * math.log(6371.0), atol=1e-6)
    with pytest.raises(ValueError, match="finite degrees in range"):
        g.log_prob(torch.randn(1, 4), torch.tensor([[95.0, 0.0]]))
    with pytest.raises(ValueError, match="units must be"):
        g.log_prob(torch.randn(1, 4), torch.tensor([[5.0, 0.0]]), units="m2")
