import math

import pytest
import torch

from globeflow import geo

pytestmark = pytest.mark.usefixtures("float64")


@pytest.fixture
def gen():
    return torch.Generator().manual_seed(0)


def random_points(n, gen):
    return geo.uniform((n,), generator=gen, dtype=torch.float64)


def random_tangent(x, gen, scale=1.0):
    return geo.proju(x, scale * torch.randn(x.shape, generator=gen, dtype=x.dtype))


# Special points: poles, antimeridian neighbours, exact antipodes, coincident points.
SPECIAL = torch.tensor([[90.0, 0.0], [-90.0, 0.0], [0.0, 180.0], [0.0, -180.0], [0.0, 179.9999],
                        [45.0, -179.9999], [-33.9, 151.2], [48.85, 2.35]], dtype=torch.float64)


def test_latlon_round_trip_and_unit_norm(gen):
    latlon = torch.stack((torch.rand(1000, generator=gen) * 180 - 90, torch.rand(1000, generator=gen) * 360 - 180), -1)
    x = geo.latlon_to_xyz(latlon)
    assert torch.allclose(x.norm(dim=-1), torch.ones(1000))
    back = geo.xyz_to_latlon(x)
    assert torch.allclose(back, latlon, atol=1e-9)


def test_latlon_known_values():
    x = geo.latlon_to_xyz(torch.tensor([[0.0, 0.0], [0.0, 90.0], [90.0, 0.0]]))
    assert torch.allclose(x, torch.eye(3), atol=1e-15)


def test_projx_idempotent_and_origin_safe(gen):
    z = torch.randn(100, 3, generator=gen) * 5
    p = geo.projx(z)
    assert torch.allclose(geo.projx(p), p)
    assert torch.isfinite(geo.projx(torch.zeros(2, 3))).all()
    assert geo.check_point(geo.projx(torch.zeros(1, 3)))


def test_proju_orthogonal_and_idempotent(gen):
    x = random_points(100, gen)
    u = torch.randn(100, 3, generator=gen)
    v = geo.proju(x, u)
    assert geo.inner(x, v).abs().max() < 1e-14
    assert torch.allclose(geo.proju(x, v), v)


def test_exp_log_round_trip(gen):
    x = random_points(500, gen)
    y = random_points(500, gen)
    v = geo.logmap(x, y)
    assert geo.check_tangent(x, v)
    assert torch.allclose(geo.expmap(x, v), y, atol=1e-9)


def test_dist_of_exp_equals_norm(gen):
    x = random_points(500, gen)
    v = random_tangent(x, gen)
    v = v / v.norm(dim=-1, keepdim=True) * torch.rand(500, 1, generator=gen) * (math.pi - 1e-6)
    assert torch.allclose(geo.dist(x, geo.expmap(x, v)), v.norm(dim=-1), atol=1e-10)


def test_exp_tiny_and_zero_vectors(gen):
    x = random_points(10, gen)
    assert torch.allclose(geo.expmap(x, torch.zeros_like(x)), x)
    v = random_tangent(x, gen, scale=1e-14)
    assert torch.allclose(geo.expmap(x, v), x, atol=1e-13)


def test_antipodes_and_coincident_points_are_finite():
    x = geo.latlon_to_xyz(SPECIAL)
    for y in (x, -x):
        v = geo.logmap(x, y)
        assert torch.isfinite(v).all()
        assert geo.check_tangent(x, v)
    assert torch.allclose(geo.logmap(x, -x).norm(dim=-1), torch.full((len(x),), math.pi))
    assert torch.allclose(geo.expmap(x, geo.logmap(x, -x)), -x, atol=1e-9)
    assert torch.allclose(geo.dist(x, -x), torch.full((len(x),), math.pi))
    assert geo.dist(x, x).abs().max() < 1e-7


def test_haversine_closed_forms():
    a = torch.tensor([[0.0, 0.0], [90.0, 0.0], [0.0, 179.5], [10.0, 20.0], [0.0, 0.0]])
    b = torch.tensor([[0.0, 180.0], [-90.0, 45.0], [0.0, -179.5], [10.0, 20.0], [0.0, 1.0]])
    d = geo.haversine_km(a, b)
    half = math.pi * geo.EARTH_RADIUS_KM
    expected = torch.tensor([half, half, geo.EARTH_RADIUS_KM * math.radians(1.0), 0.0,
                             geo.EARTH_RADIUS_KM * math.radians(1.0)])
    assert torch.allclose(d, expected, atol=1e-6)


def test_haversine_agrees_with_vector_angle(gen):
    x, y = random_points(1000, gen), random_points(1000, gen)
    d1 = geo.haversine_km(geo.xyz_to_latlon(x), geo.xyz_to_latlon(y))
    d2 = geo.dist(x, y) * geo.EARTH_RADIUS_KM
    assert torch.allclose(d1, d2, atol=1e-6)


def test_geodesic_velocity_is_derivative_and_constant_speed(gen):
    x0, x1 = random_points(200, gen), random_points(200, gen)
    t = torch.rand(200, generator=gen)
    xt, dxt = geo.geodesic_velocity(x0, x1, t)
    assert torch.allclose(xt, geo.geodesic(x0, x1, t), atol=1e-12)
    h = 1e-6
    fd = (geo.geodesic(x0, x1, t + h) - geo.geodesic(x0, x1, t - h)) / (2 * h)
    assert torch.allclose(dxt, fd, atol=1e-6)
    assert torch.allclose(dxt.norm(dim=-1), geo.dist(x0, x1), atol=1e-12)
    end, _ = geo.geodesic_velocity(x0, x1, torch.ones(200))
    assert torch.allclose(end, x1, atol=1e-9)


def test_uniform_is_uniform(gen):
    x = geo.uniform((200_000,), generator=gen, dtype=torch.float64)
    # Archimedes: z is uniform on [-1, 1] for the uniform distribution on S^2.
    assert abs(x[:, 2].mean()) < 0.01
    assert abs((x[:, 2] ** 2).mean() - 1 / 3) < 0.01
    assert abs(x.mean(0)).max() < 0.01


@pytest.mark.parametrize("kappa", [0.0, 1e-8, 1.0, 50.0, 5000.0])
def test_vmf_log_prob_integrates_to_one(kappa):
    # Integrate over the polar angle from the mean: density depends on cos(theta) only.
    n = 400_000
    c = torch.linspace(-1, 1, n + 1, dtype=torch.float64)
    c = (c[1:] + c[:-1]) / 2
    mu = torch.tensor([0.0, 0.0, 1.0])
    x = torch.stack((torch.sqrt(1 - c ** 2), torch.zeros(n), c), -1)
    p = geo.vmf_log_prob(x, mu.expand(n, 3), kappa).exp()
    total = (p * 2 * math.pi * (2 / n)).sum()
    assert abs(total - 1) < 1e-3


def test_vmf_uniform_limit_and_large_kappa_finite():
    x = geo.uniform((10,), generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    mu = torch.tensor([1.0, 0.0, 0.0]).expand(10, 3)
    assert torch.allclose(geo.vmf_log_prob(x, mu, 0.0), torch.full((10,), -math.log(4 * math.pi)))
    assert torch.isfinite(geo.vmf_log_prob(x, mu, 1e6)).all()


@pytest.mark.parametrize("kappa", [0.5, 10.0, 300.0])
def test_vmf_sample_moments(kappa, gen):
    mu = geo.projx(torch.tensor([0.3, -0.5, 0.8]))
    x = geo.vmf_sample(mu, kappa, 200_000, generator=gen)
    assert geo.check_point(x)
    # E[mu.x] = coth(kappa) - 1/kappa on S^2.
    expected = 1 / math.tanh(kappa) - 1 / kappa
    assert abs(geo.inner(x, mu).mean().item() - expected) < 3e-3
    # The mean resultant direction is mu.
    m = x.mean(0)
    assert torch.allclose(m / m.norm(), mu, atol=1e-2)


def test_vmf_sample_log_prob_consistency(gen):
    # E_p[log p] from samples equals the closed-form negative entropy of a vMF.
    kappa = 20.0
    mu = torch.tensor([0.0, 1.0, 0.0])
    x = geo.vmf_sample(mu, kappa, 200_000, generator=gen)
    lp = geo.vmf_log_prob(x, mu.expand_as(x), kappa).mean()
    neg_entropy = math.log(kappa / (4 * math.pi * math.sinh(kappa))) + kappa * (1 / math.tanh(kappa) - 1 / kappa)
    assert abs(lp.item() - neg_entropy) < 0.01


def test_check_point_explains():
    ok, why = geo.check_point(torch.tensor([[2.0, 0.0, 0.0]]), explain=True)
    assert not ok and "norm deviates" in why
    ok, why = geo.check_point(torch.tensor([[float("nan"), 0.0, 0.0]]), explain=True)
    assert not ok and "not finite" in why
    ok, why = geo.check_tangent(torch.tensor([[1.0, 0.0, 0.0]]), torch.tensor([[0.5, 1.0, 0.0]]), explain=True)
    assert not ok and "<x, v>" in why


def test_float32_special_points_no_nan():
    x = geo.latlon_to_xyz(SPECIAL.float())
    for y in (x, -x, geo.projx(x + 1e-7)):
        assert torch.isfinite(geo.logmap(x, y)).all()
        assert torch.isfinite(geo.dist(x, y)).all()
        assert torch.isfinite(geo.expmap(x, geo.logmap(x, y))).all()
        _, v = geo.geodesic_velocity(x, y, torch.full((len(x),), 0.5))
        assert torch.isfinite(v).all()


def test_points_around_lie_at_their_angle_in_their_bearing():
    x = geo.latlon_to_xyz(torch.tensor([-16.6, 179.2], dtype=torch.float64))
    angle = torch.tensor([0.0, 0.01, 0.5, 2.0, math.pi - 1e-6], dtype=torch.float64)
    bearing = torch.tensor([0.0, 1.0, 2.5, 4.0, 6.0], dtype=torch.float64)
    y = geo.points_around(x, angle, bearing)
    assert torch.allclose(y.norm(dim=-1), torch.ones(5, dtype=torch.float64))
    assert torch.allclose(geo.dist(x.expand_as(y), y), angle, atol=1e-9)
    # The direction of departure is the bearing's, in the tangent basis at x.
    e1, e2 = geo.tangent_basis(x)
    v = geo.logmap(x.expand_as(y[1:4]), y[1:4])
    assert torch.allclose(torch.atan2(v @ e2, v @ e1) % (2 * math.pi), bearing[1:4], atol=1e-9)
