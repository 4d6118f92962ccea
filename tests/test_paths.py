import math

import pytest
import torch

from globeflow import geo
from globeflow.flow import GeoFlowModel, ModelConfig, SamplerConfig
from globeflow.flow.network import NetworkConfig
from globeflow.flow.paths import DiffusionPath, EuclideanFlowPath, SpherePath, make_path

pytestmark = pytest.mark.usefixtures("float64")

NORTH = torch.tensor([[0.0, 0.0, 1.0]], dtype=torch.float64)
GULF_OF_GUINEA = torch.tensor([[1.0, 0.0, 0.0]], dtype=torch.float64)  # lat 0, lon 0


def test_rfm_target_hand_derived():
    # From the north pole to (0, 0): a quarter great circle, theta = pi / 2, in the x-z plane.
    s = SpherePath().interpolate(NORTH, GULF_OF_GUINEA, torch.tensor([0.5]))
    r = math.sqrt(0.5)
    assert torch.allclose(s.xt, torch.tensor([[r, 0.0, r]]), atol=1e-12)
    assert torch.allclose(s.target, math.pi / 2 * torch.tensor([[r, 0.0, -r]]), atol=1e-12)
    # A zero output costs |u|^2 = theta^2; a purely normal output is ignored (projected away).
    assert torch.allclose(SpherePath().loss(torch.zeros(1, 3), s), torch.tensor([math.pi ** 2 / 4]))
    assert torch.allclose(SpherePath().loss(5.0 * s.xt, s), torch.tensor([math.pi ** 2 / 4]))
    assert SpherePath().loss(s.target, s).item() < 1e-20


def test_rfm_path_endpoints():
    gen = torch.Generator().manual_seed(0)
    x0, x1 = geo.uniform((50,), generator=gen, dtype=torch.float64), geo.uniform((50,), generator=gen, dtype=torch.float64)
    p = SpherePath()
    assert torch.allclose(p.interpolate(x0, x1, torch.zeros(50)).xt, x0, atol=1e-12)
    assert torch.allclose(p.interpolate(x0, x1, torch.ones(50)).xt, x1, atol=1e-9)
    assert geo.check_tangent(p.interpolate(x0, x1, torch.full((50,), 0.3)).xt, p.interpolate(x0, x1, torch.full((50,), 0.3)).target)


def test_fm_target_hand_derived():
    x0 = torch.tensor([[1.0, 2.0, 3.0]])
    s = EuclideanFlowPath().interpolate(x0, GULF_OF_GUINEA, torch.tensor([0.25]))
    assert torch.allclose(s.xt, torch.tensor([[0.25 + 0.75, 1.5, 2.25]]))
    assert torch.allclose(s.target, torch.tensor([[0.0, -2.0, -3.0]]))
    assert torch.allclose(EuclideanFlowPath().loss(torch.zeros(1, 3), s), torch.tensor([13.0]))


def test_diffusion_target_hand_derived():
    n = torch.tensor([[0.5, -1.0, 2.0]])
    p = DiffusionPath()
    s = p.interpolate(n, GULF_OF_GUINEA, torch.tensor([0.64]))
    assert torch.allclose(s.xt, torch.tensor([[0.8 + 0.3, -0.6, 1.2]]))
    assert torch.equal(s.target, n)
    x1_hat, eps_hat = p.denoise(n, s.xt, torch.tensor([0.64]))
    assert torch.allclose(x1_hat, GULF_OF_GUINEA) and torch.allclose(eps_hat, n)
    assert torch.allclose(p.loss(torch.zeros(1, 3), s), torch.tensor([5.25]))


def test_diffusion_clean_estimate_is_clipped_to_the_unit_ball():
    # Near pure noise a small error in the predicted noise implies a clean point far outside the
    # ball; it is clipped to norm 1 and the noise estimate stays consistent with x.
    p, g = DiffusionPath(), torch.tensor([1e-9])
    x = torch.tensor([[0.3, -1.2, 0.8]])
    x1_hat, eps_hat = p.denoise(x + 0.01, x, g)
    assert torch.allclose(x1_hat.norm(dim=-1), torch.ones(1))
    assert torch.allclose(g.sqrt() * x1_hat + (1 - g).sqrt() * eps_hat, x)


def test_make_path_rejects_unknown_kind():
    with pytest.raises(ValueError, match="unknown model kind 'vae'"):
        make_path("vae")


def tiny_model(kind="rfm", cond_drop=0.1, seed=0):
    torch.manual_seed(seed)
    return GeoFlowModel(ModelConfig(NetworkConfig(cond_dim=4, dim=16, depth=2), kind=kind, cond_drop=cond_drop)).double()


def test_model_loss_is_the_path_loss_with_seeded_draws():
    m = tiny_model(cond_drop=0.0)
    # Make the output non-trivial (the last layers start at zero).
    for p in m.parameters():
        torch.nn.init.normal_(p, std=0.3)
    x1 = geo.uniform((8,), generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    emb = torch.randn(8, 4, generator=torch.Generator().manual_seed(2))
    loss = m.loss(x1, emb, generator=torch.Generator().manual_seed(3))
    g = torch.Generator().manual_seed(3)
    t = torch.rand(8, generator=g)
    gamma = m.schedule(t)
    torch.rand(8, generator=g)  # the (unused) drop draw
    x0 = geo.uniform((8,), generator=g, dtype=torch.float64)
    s = m.path.interpolate(x0, x1, gamma)
    manual = (geo.proju(s.xt, m.network(s.xt, gamma, emb)) - s.target).pow(2).sum(-1).mean()
    assert torch.allclose(loss, manual)


def test_guidance_mixes_conditional_and_unconditional_outputs():
    m = tiny_model()
    for p in m.parameters():
        torch.nn.init.normal_(p, std=0.3)
    x, g, e = geo.uniform((5,), dtype=torch.float64), torch.full((5,), 0.4), torch.randn(5, 4)
    c, u = m.network(x, g, e), m.network(x, g, torch.zeros_like(e))
    assert torch.allclose(m.output(x, g, e, guidance=2.0), 3 * c - 2 * u)
    assert torch.allclose(m.output(x, torch.tensor(0.4), e), c)


@pytest.mark.parametrize("kind", ["rfm", "fm", "diffusion"])
def test_sample_shapes_units_and_determinism(kind):
    m = tiny_model(kind)
    for p in m.parameters():
        torch.nn.init.normal_(p, std=0.1)
    emb = torch.randn(3, 4)
    sampler = SamplerConfig(method="ddim" if kind == "diffusion" else "midpoint", steps=4, guidance=1.0)
    a = m.sample(emb, 5, sampler, generator=torch.Generator().manual_seed(0))
    b = m.sample(emb, 5, sampler, generator=torch.Generator().manual_seed(0), chunk_size=4)
    assert a.shape == (3, 5, 3)
    assert geo.check_point(a.reshape(-1, 3))
    assert torch.allclose(a, b)


@pytest.mark.parametrize("kind", ["fm", "diffusion"])
def test_r3_samplers_project_once_or_every_step(kind):
    # "exp" leaves the R^3 states free until the final projection; "retraction" (the projection
    # ablation) projects every step's result onto the sphere, which changes where samples land.
    m = tiny_model(kind)
    for p in m.parameters():
        torch.nn.init.normal_(p, std=0.3)
    emb, method = torch.randn(2, 4), "ddim" if kind == "diffusion" else "rk4"
    norms = {}
    for step in ("exp", "retraction"):
        seen = []
        out = m.sample(emb, 6, SamplerConfig(method=method, steps=5, step=step),
                       generator=torch.Generator().manual_seed(0), callback=lambda i, g, x: seen.append(x.norm(dim=-1)))
        assert len(seen) == 5 and geo.check_point(out.reshape(-1, 3))
        norms[step] = (torch.stack(seen), out)
    assert torch.allclose(norms["retraction"][0], torch.ones(()), atol=1e-12)
    assert (norms["exp"][0][0] - 1).abs().max() > 1e-3
    if kind == "diffusion":  # DDIM's last state is its clean estimate, clipped into the unit ball
        assert norms["exp"][0][-1].max() <= 1 + 1e-12
    assert (norms["exp"][1] - norms["retraction"][1]).norm(dim=-1).max() > 1e-3


def test_sample_rejects_bad_input():
    m = tiny_model("diffusion")
    with pytest.raises(ValueError, match="'rk4' is not available for a diffusion model"):
        m.sample(torch.randn(2, 4), 3, SamplerConfig(method="rk4"))
    with pytest.raises(ValueError, match=r"shape \(B, 4\)"):
        m.sample(torch.randn(2, 5), 3)


def test_cond_drop_rate():
    m = tiny_model(cond_drop=0.1)
    seen = []
    m.network.cond_mapper.register_forward_hook(lambda mod, i, o: seen.append((i[0] == 0).all(-1).double().mean().item()))
    m.loss(geo.uniform((20000,), dtype=torch.float64), torch.randn(20000, 4), generator=torch.Generator().manual_seed(0))
    assert abs(seen[0] - 0.1) < 0.01
