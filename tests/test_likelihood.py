import math

import pytest
import torch

from globeflow import geo
from globeflow.flow import GeoFlowModel, ModelConfig
from globeflow.flow.likelihood import LOG_UNIFORM, divergence, log_prob_ode, sample_log_prob_ode
from globeflow.flow.network import NetworkConfig
from globeflow.flow.schedules import make_schedule
from globeflow.geo import healpix as hp

pytestmark = pytest.mark.usefixtures("float64")

EZ = torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64)
A = 1.5  # total "pull" of the polar field below


def polar_field(x, g):
    """Moves mass towards the north pole: v = a(g) P(x) e_z with a(g) = 2 A g (integral A)."""
    return 2 * A * g * geo.proju(x, EZ.expand_as(x))


def polar_log_density(x):
    """Closed form: the flow scales tan(theta / 2) by lam = exp(-A), a stereographic dilation of the
    uniform distribution: p = lam^2 * 4 / (lam^2 (1 + z) + (1 - z))^2 / (4 pi)."""
    lam2, z = math.exp(-2 * A), x[..., 2]
    return LOG_UNIFORM + math.log(lam2) + math.log(4.0) - 2 * torch.log(lam2 * (1 + z) + (1 - z))


def points(n=64, seed=0):
    return geo.uniform((n,), generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def test_tangent_basis_is_orthonormal_and_tangent():
    x = torch.cat((points(), torch.eye(3), -torch.eye(3)))
    e1, e2 = geo.tangent_basis(x)
    for e in (e1, e2):
        assert geo.inner(x, e).abs().max() < 1e-12
        assert torch.allclose(e.norm(dim=-1), torch.ones(len(x)))
    assert geo.inner(e1, e2).abs().max() < 1e-12


def test_divergence_closed_form():
    # div_S2 of the gradient of z (P e_z) is the Laplacian of z: -2 z. A rotation is divergence-free.
    x = points()
    _, div, n = divergence(lambda y, g: geo.proju(y, EZ.expand_as(y)), x, torch.tensor(0.5))
    assert n == 2 and torch.allclose(div, -2 * x[:, 2], atol=1e-10)
    _, div, _ = divergence(lambda y, g: torch.linalg.cross(EZ.expand_as(y), y, dim=-1), x, torch.tensor(0.5))
    assert div.abs().max() < 1e-10


def test_the_ambient_trace_is_not_the_divergence():
    # The published likelihood takes tr(J) of the unprojected output; for f = e_z (constant) the
    # sphere field P f has divergence -2 z while tr J(f) = 0: the two disagree.
    x = points()
    _, div, _ = divergence(lambda y, g: geo.proju(y, EZ.expand_as(y)), x, torch.tensor(0.0))
    assert (div - 0.0).abs().max() > 1.0


def test_zero_field_gives_the_uniform_density_exactly():
    grid = make_schedule().sampling_grid(8, dtype=torch.float64)
    for method in ("rk4", "dopri5"):
        r = log_prob_ode(lambda y, g: torch.zeros_like(y), points(), grid=grid, method=method)
        assert torch.equal(r.log_prob, torch.full((64,), LOG_UNIFORM))


@pytest.mark.parametrize("method,steps,tol", [("rk4", 32, 1e-4), ("dopri5", 2, 1e-4)])
def test_known_flow_matches_closed_form_density(method, steps, tol):
    grid = torch.linspace(0.0, 1.0, steps + 1)
    x = points(200)
    r = log_prob_ode(polar_field, x, grid=grid, method=method, rtol=1e-7, atol=1e-7)
    assert (r.log_prob - polar_log_density(x)).abs().max() < tol
    assert r.nfe > 0


def test_rk4_error_falls_at_fourth_order():
    x = points(50)
    errs = [(log_prob_ode(polar_field, x, grid=torch.linspace(0, 1, n + 1)).log_prob - polar_log_density(x)).abs().max()
            for n in (8, 16)]
    assert 3.3 < math.log2(errs[0] / errs[1]) < 4.7


def test_hutchinson_is_unbiased():
    x = points(20)
    f = lambda y, g: geo.proju(y, torch.stack((y[:, 1] ** 2, torch.sin(3 * y[:, 0]), y[:, 0] * y[:, 2]), -1))  # noqa: E731
    _, exact, _ = divergence(f, x, torch.tensor(0.3))
    gen = torch.Generator().manual_seed(0)
    est = torch.stack([divergence(f, x, torch.tensor(0.3), "hutchinson", gen)[1] for _ in range(4000)]).mean(0)
    assert (est - exact).abs().max() < 0.1
    with pytest.raises(ValueError, match="unknown divergence 'trace'"):
        divergence(f, x, torch.tensor(0.3), "trace")


def test_hutchinson_with_dopri5_is_unbiased():
    # One fixed tangent probe per trajectory: unbiased over probes, and converged in the tolerance.
    # (The probe must not be drawn from the generator that drew the points: a probe parallel to the
    # point projects to zero. An earlier benchmark run did exactly that and saw a spurious +0.56.)
    x = points(2000, seed=3)
    r = log_prob_ode(polar_field, x, grid=torch.linspace(0, 1, 2), method="dopri5", divergence_kind="hutchinson",
                     generator=torch.Generator().manual_seed(11), rtol=1e-6, atol=1e-6)
    err = r.log_prob - polar_log_density(x)
    assert abs(err.mean().item()) < 4 * err.std().item() / math.sqrt(len(x))
    assert err.std() > 0.1  # it is an estimator, not the exact value


def test_forward_solve_gives_samples_with_their_exact_density():
    x0 = points(300, seed=4)
    r = sample_log_prob_ode(polar_field, x0, grid=torch.linspace(0.0, 1.0, 33))
    assert torch.allclose(r.x.norm(dim=-1), torch.ones(300))
    assert (r.log_prob - polar_log_density(r.x)).abs().max() < 1e-4
    # The flow moved mass north: the samples are not the prior points.
    assert r.x[:, 2].mean() > x0[:, 2].mean() + 0.3
    # Batched shapes (images, samples, 3) keep their leading dimensions.
    rb = sample_log_prob_ode(polar_field, x0.reshape(3, 100, 3), grid=torch.linspace(0.0, 1.0, 33))
    assert rb.log_prob.shape == (3, 100) and torch.allclose(rb.log_prob.reshape(-1), r.log_prob)


def random_model(seed=0):
    torch.manual_seed(seed)
    m = GeoFlowModel(ModelConfig(NetworkConfig(cond_dim=3, dim=16, depth=2))).double()
    for p in m.parameters():
        torch.nn.init.normal_(p, std=0.4)
    # A moderate output scale: the density varies by ~2 nats, which 16 RK4 steps resolve.
    torch.nn.init.normal_(m.network.final_linear.weight, std=0.05)
    return m.eval()


@pytest.mark.parametrize("guidance", [0.0, 2.0])
def test_a_model_density_integrates_to_one_on_the_equal_area_grid(guidance):
    m = random_model()
    cells = hp.cell_centers(16)
    emb = torch.tensor([[0.5, -1.0, 0.3]], dtype=torch.float64).expand(len(cells), 3)
    grid = m.schedule.sampling_grid(16, dtype=torch.float64)
    r = log_prob_ode(lambda y, g: m.velocity(y, g, emb, guidance), cells, grid=grid)
    mass = (r.log_prob.exp() * hp.cell_area(16)).sum().item()
    assert abs(mass - 1) < 0.01, mass
    # The field is not trivial: the density is far from uniform somewhere.
    assert (r.log_prob - LOG_UNIFORM).abs().max() > 0.3


@pytest.mark.parametrize("guidance", [0.0, 2.0])
def test_closed_form_model_divergence_equals_the_jvp_divergence(guidance):
    """``ModelField``'s ``e1.dN[e1] + e2.dN[e2] - 2 x.N`` is the Riemannian divergence of ``P_x N``."""
    from globeflow.flow.likelihood import ModelField

    torch.manual_seed(1)
    model = GeoFlowModel(ModelConfig(NetworkConfig(cond_dim=4, dim=16, depth=2))).double()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.3 * torch.randn_like(p))
    emb = torch.randn(2, 4, dtype=torch.float64)
    x = geo.projx(torch.randn(2, 7, 3, dtype=torch.float64))
    field = ModelField(model, emb, guidance)
    gamma = torch.tensor(0.4, dtype=torch.float64)
    v, div, n = divergence(field, x, gamma)
    v_ref, div_ref, n_ref = divergence(lambda y, g: field(y, g), x, gamma)  # generic path: two JVPs
    assert n == n_ref == 2
    torch.testing.assert_close(v, v_ref)
    torch.testing.assert_close(div, div_ref, rtol=1e-9, atol=1e-9)
    assert div.abs().max() > 0.1  # a field with a real divergence, not a trivially zero one


# --- the adaptive pairs -------------------------------------------------------------------------------------------

SPIKE_AT, SPIKE_WIDTH = 0.6, 0.01


def spike_field(x, g):
    """The polar field with its whole pull A in a narrow burst of gamma (a Gaussian of width 0.01):
    the density at gamma = 1 is the same closed form, but a fixed grid steps over the burst."""
    a = A * torch.exp(-0.5 * ((g - SPIKE_AT) / SPIKE_WIDTH) ** 2) / (SPIKE_WIDTH * math.sqrt(2 * math.pi))
    return a * geo.proju(x, EZ.expand_as(x))


@pytest.mark.parametrize("method", ["dopri5", "bosh3"])
def test_adaptive_resolves_a_spike_a_fixed_grid_steps_over(method):
    x = points(100)
    truth = polar_log_density(x)
    fixed = log_prob_ode(spike_field, x, grid=torch.linspace(0, 1, 17))
    adaptive = log_prob_ode(spike_field, x, grid=torch.linspace(0, 1, 2), method=method, rtol=1e-6, atol=1e-6)
    assert (fixed.log_prob - truth).abs().max() > 0.5  # RK4-16 misses the burst
    err = (adaptive.log_prob - truth).abs()
    assert err.max() < 1e-3
    # The reported error estimate is of the size of the actual error (not zero, not wildly off).
    assert adaptive.error is not None and adaptive.error.shape == (100,)
    assert err.max() < 20 * adaptive.error.max() + 1e-6 and adaptive.error.max() < 1e-2


def test_adaptive_rows_take_their_own_steps():
    # A field with a burst only for z > 0: the northern row takes small steps through it, the
    # southern row (which does not move) only the steps that max_step allows.
    from globeflow.flow.solvers import solve_adaptive

    def f(x, g, rows):
        north = (x[:, 2] > 0).to(x.dtype)
        v = spike_field(x, g[:, None]) * north[:, None]
        return v, torch.zeros_like(g)

    x = torch.tensor([[0.6, 0.0, 0.8], [0.6, 0.0, -0.8]], dtype=torch.float64)
    r = solve_adaptive(f, x, 0.0, 1.0, rtol=1e-6, atol=1e-6)
    assert r.steps[1] == 8 and r.steps[0] > 2 * r.steps[1]
    assert torch.allclose(r.x[1], x[1])


def test_adaptive_matches_the_forward_density_and_runs_backwards():
    x0 = points(50, seed=2)
    fwd = sample_log_prob_ode(spike_field, x0, grid=torch.linspace(0, 1, 2), method="dopri5")
    assert (fwd.log_prob - polar_log_density(fwd.x)).abs().max() < 1e-3
    back = log_prob_ode(spike_field, fwd.x, grid=torch.linspace(0, 1, 2), method="dopri5")
    assert (back.log_prob - fwd.log_prob).abs().max() < 1e-3


def test_adaptive_argument_errors():
    from globeflow.flow.solvers import solve_adaptive

    with pytest.raises(ValueError, match="unknown adaptive solver 'rk45'; expected one of bosh3, dopri5"):
        solve_adaptive(lambda x, g, r: (x, g), points(2), 0.0, 1.0, rtol=1e-5, atol=1e-5, method="rk45")
    with pytest.raises(ValueError, match="tolerances must be > 0"):
        solve_adaptive(lambda x, g, r: (x, g), points(2), 0.0, 1.0, rtol=0.0, atol=1e-5)
    with pytest.raises(ValueError, match="unknown likelihood solver 'euler'; expected one of rk4, bosh3, dopri5"):
        log_prob_ode(polar_field, points(2), grid=torch.linspace(0, 1, 2), method="euler")
