import math

import pytest
import torch

from globeflow import geo
from globeflow.flow import solvers

pytestmark = pytest.mark.usefixtures("float64")

AXIS = geo.projx(torch.tensor([0.2, -0.4, 1.0], dtype=torch.float64))


def rate(g):
    return 1.0 + 2.0 * g  # integral over [0, 1] is 2


def rotation_field(x, g):
    """Rotation about AXIS at a time-varying rate: the exact flow is a known arc."""
    return rate(g) * torch.linalg.cross(AXIS.expand_as(x), x, dim=-1)


def exact_rotation(x0):
    return solvers.rotate(x0, 2.0 * AXIS.expand_as(x0))


def start_points():
    return geo.latlon_to_xyz(torch.tensor([[10.0, 20.0], [-50.0, 170.0], [80.0, -120.0], [0.0, 179.9]]))


def error(solver, steps, **kw):
    x0 = start_points()
    grid = torch.linspace(0.0, 1.0, steps + 1)
    return geo.dist(solver(rotation_field, x0, grid, **kw), exact_rotation(x0)).max().item()


@pytest.mark.parametrize("step", ["exp", "retraction"])
@pytest.mark.parametrize("solver,order", [(solvers.sphere_euler, 1), (solvers.sphere_midpoint, 2), (solvers.sphere_rk4, 4)])
def test_sphere_solver_converges_at_its_order(solver, order, step):
    e1, e2 = error(solver, 16, step=step), error(solver, 32, step=step)
    observed = math.log2(e1 / e2)
    assert abs(observed - order) < 0.35, (e1, e2, observed)


@pytest.mark.parametrize("solver", [solvers.sphere_euler, solvers.sphere_midpoint, solvers.sphere_rk4])
@pytest.mark.parametrize("step", ["exp", "retraction"])
def test_sphere_solvers_stay_on_sphere(solver, step):
    x = solver(rotation_field, start_points(), torch.linspace(0, 1, 5), step=step)
    assert geo.check_point(x)


def test_rk4_is_accurate_with_few_steps():
    assert error(solvers.sphere_rk4, 16) < 1e-5


def test_zero_field_is_identity():
    x0 = start_points()
    zero = lambda x, g: torch.zeros_like(x)
    for solver in (solvers.sphere_euler, solvers.sphere_midpoint, solvers.sphere_rk4):
        assert torch.allclose(solver(zero, x0, torch.linspace(0, 1, 7)), x0, atol=1e-15)


def test_euler_exp_step_follows_the_geodesic():
    # A constant tangent field at x0 stepped once with exp is exactly exp_{x0}(h v).
    x0 = start_points()
    v = geo.proju(x0, torch.tensor([1.0, 2.0, 3.0]).expand_as(x0))
    out = solvers.sphere_euler(lambda x, g: v, x0, torch.tensor([0.0, 0.3]))
    assert torch.allclose(out, geo.expmap(x0, 0.3 * v), atol=1e-12)


@pytest.mark.parametrize("solver,order", [(solvers.euclidean_euler, 1), (solvers.euclidean_midpoint, 2), (solvers.euclidean_rk4, 4)])
def test_euclidean_solver_order_on_linear_ode(solver, order):
    # dx/dg = -(1 + g) x has the solution x0 exp(-(g + g^2/2)).
    field = lambda x, g: -(1 + g) * x
    x0 = torch.tensor([[1.0, -2.0, 0.5]])
    exact = x0 * math.exp(-1.5)
    errs = [(solver(field, x0, torch.linspace(0, 1, n + 1)) - exact).abs().max().item() for n in (16, 32)]
    assert abs(math.log2(errs[0] / errs[1]) - order) < 0.3


def test_ddim_with_an_oracle_denoiser_lands_on_the_data():
    x1 = geo.latlon_to_xyz(torch.tensor([[12.0, 34.0]]))
    eps = torch.randn(1, 3, generator=torch.Generator().manual_seed(0))

    def oracle(x, g):
        # The noise consistent with x for a point mass at x1.
        return x1, (x - g.sqrt() * x1) / (1 - g).clamp_min(1e-12).sqrt()

    grid = torch.tensor([1e-9, 0.1, 0.5, 0.9, 1.0])
    x = grid[0].sqrt() * x1 + (1 - grid[0]).sqrt() * eps
    assert torch.allclose(solvers.ddim(oracle, x, grid), x1, atol=1e-12)


def test_callback_sees_every_step():
    seen = []
    solvers.sphere_rk4(rotation_field, start_points(), torch.linspace(0, 1, 6), callback=lambda i, g, x: seen.append((i, float(g))))
    assert [i for i, _ in seen] == list(range(5))
    assert seen[-1][1] == 1.0


def test_solve_rejects_unknown_names():
    with pytest.raises(ValueError, match="unknown solver 'heun'"):
        solvers.solve(rotation_field, start_points(), torch.linspace(0, 1, 3), method="heun")
    with pytest.raises(ValueError, match="unknown sphere step 'qr'"):
        solvers.sphere_euler(rotation_field, start_points(), torch.linspace(0, 1, 3), step="qr")
