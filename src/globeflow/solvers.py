"""ODE solvers for sampling: on the sphere, in R^3, and DDIM for the diffusion variant.

All solvers share one signature, ``solver(field, x, grid, callback=None) -> x``:

- ``field(x (N, 3), gamma (scalar Tensor)) -> (N, 3)`` is ``dx/dgamma``; on the sphere it must be
  tangent at ``x`` (the model's fields are projected).
- ``grid (steps + 1,)`` holds the signal levels to step through, from noise to data.
- ``callback(i, gamma, x)``, if given, sees the state after each step.

Sphere solvers come in two flavours, chosen with ``step``:

``"exp"`` (default): Runge-Kutta-Munthe-Kaas methods. A tangent field ``v`` at ``x`` is the
rotation with angular velocity ``w = x cross v``; each step rotates the points (the exponential map
of SO(3), which moves a point along the great circle of its velocity), so states never leave the
sphere and Euler is the geodesic step ``exp_x(h v)``. RK4 uses the truncated inverse derivative of
the exponential, ``dexpinv_W(U) = U - W x U / 2 + W x (W x U) / 12``, which keeps fourth order.

``"retraction"``: the same Runge-Kutta tableau in R^3 on the tangent field extended radially, then
the projection ``x / |x|`` after each stage. That extension's flow preserves ``|x|``, so the order
of the method is kept; Euler with retraction is the published sampler (Euler + renormalisation).
"""

from __future__ import annotations

from typing import Callable, Literal, Optional

import torch
from torch import Tensor

from . import geometry as geo

__all__ = [
    "Field",
    "Callback",
    "rotate",
    "sphere_euler",
    "sphere_midpoint",
    "sphere_rk4",
    "euclidean_euler",
    "euclidean_midpoint",
    "euclidean_rk4",
    "ddim",
    "METHODS",
    "solve",
]

Field = Callable[[Tensor, Tensor], Tensor]
Callback = Optional[Callable[[int, Tensor, Tensor], None]]
Step = Literal["exp", "retraction"]
METHODS = ("euler", "midpoint", "rk4")


def rotate(x: Tensor, w: Tensor) -> Tensor:
    """Rotate points ``x (N, 3)`` by the axis-angle vectors ``w (N, 3)`` (Rodrigues' formula)."""
    angle = w.norm(dim=-1, keepdim=True)
    small = angle < 1e-12
    safe = torch.where(small, torch.ones_like(angle), angle)
    k = w / safe
    cos, sin = torch.cos(angle), torch.sin(angle)
    rotated = x * cos + torch.linalg.cross(k, x, dim=-1) * sin + k * geo.inner(k, x, keepdim=True) * (1 - cos)
    # Renormalise: rounding in long integrations must not drift off the sphere.
    return geo.projx(torch.where(small, x + torch.linalg.cross(w, x, dim=-1), rotated))


def _omega(field: Field, x: Tensor, g: Tensor) -> Tensor:
    """Angular velocity of the tangent field at ``x``: ``x cross v`` (so that ``w cross x = v``)."""
    return torch.linalg.cross(x, field(x, g), dim=-1)


def _dexpinv(w: Tensor, u: Tensor) -> Tensor:
    wu = torch.linalg.cross(w, u, dim=-1)
    return u - 0.5 * wu + torch.linalg.cross(w, wu, dim=-1) / 12.0


def _check_step(step: str) -> None:
    if step not in ("exp", "retraction"):
        raise ValueError(f"unknown sphere step {step!r}; expected 'exp' or 'retraction'")


StepFn = Callable[[Tensor, Tensor, Tensor], Tensor]


def _march(step: StepFn, x: Tensor, grid: Tensor, callback: Callback) -> Tensor:
    """Apply ``x <- step(x, gamma_i, gamma_{i+1})`` along the grid."""
    for i in range(len(grid) - 1):
        x = step(x, grid[i], grid[i + 1])
        if callback is not None:
            callback(i, grid[i + 1], x)
    return x


def sphere_euler(field: Field, x: Tensor, grid: Tensor, callback: Callback = None, step: Step = "exp") -> Tensor:
    """First order: ``x <- exp_x(h v(x))`` (or ``projx(x + h v)`` with ``step="retraction"``)."""
    _check_step(step)

    def exp_step(x, g, g1):
        h = g1 - g
        return rotate(x, h * _omega(field, x, g))

    def retraction_step(x, g, g1):
        h = g1 - g
        return geo.projx(x + h * field(x, g))

    return _march(exp_step if step == "exp" else retraction_step, x, grid, callback)


def sphere_midpoint(field: Field, x: Tensor, grid: Tensor, callback: Callback = None, step: Step = "exp") -> Tensor:
    """Second order, two field evaluations per step."""
    _check_step(step)

    def exp_step(x, g, g1):
        h = g1 - g
        x_mid = rotate(x, 0.5 * h * _omega(field, x, g))
        return rotate(x, h * _omega(field, x_mid, g + 0.5 * h))

    def retraction_step(x, g, g1):
        h = g1 - g
        x_mid = geo.projx(x + 0.5 * h * field(x, g))
        return geo.projx(x + h * field(x_mid, g + 0.5 * h))

    return _march(exp_step if step == "exp" else retraction_step, x, grid, callback)


def sphere_rk4(field: Field, x: Tensor, grid: Tensor, callback: Callback = None, step: Step = "exp") -> Tensor:
    """Fourth order, four field evaluations per step (RKMK4 with ``step="exp"``)."""
    _check_step(step)

    def exp_step(x, g, g1):
        h = g1 - g
        k1 = _omega(field, x, g)
        k2 = _dexpinv(0.5 * h * k1, _omega(field, rotate(x, 0.5 * h * k1), g + 0.5 * h))
        k3 = _dexpinv(0.5 * h * k2, _omega(field, rotate(x, 0.5 * h * k2), g + 0.5 * h))
        k4 = _dexpinv(h * k3, _omega(field, rotate(x, h * k3), g + h))
        return rotate(x, h / 6 * (k1 + 2 * k2 + 2 * k3 + k4))

    def retraction_step(x, g, g1):
        h = g1 - g
        # The radially extended field evaluated at x + d equals the field at projx(x + d).
        return geo.projx(_rk4_increment(lambda y, t: field(geo.projx(y), t), x, g, h))

    return _march(exp_step if step == "exp" else retraction_step, x, grid, callback)


def _rk4_increment(field: Field, x: Tensor, g: Tensor, h: Tensor) -> Tensor:
    """One classical RK4 step in R^3."""
    k1 = field(x, g)
    k2 = field(x + 0.5 * h * k1, g + 0.5 * h)
    k3 = field(x + 0.5 * h * k2, g + 0.5 * h)
    k4 = field(x + h * k3, g + h)
    return x + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)


def euclidean_euler(field: Field, x: Tensor, grid: Tensor, callback: Callback = None) -> Tensor:
    return _march(lambda x, g, g1: x + (g1 - g) * field(x, g), x, grid, callback)


def euclidean_midpoint(field: Field, x: Tensor, grid: Tensor, callback: Callback = None) -> Tensor:
    def step(x, g, g1):
        h = g1 - g
        return x + h * field(x + 0.5 * h * field(x, g), g + 0.5 * h)

    return _march(step, x, grid, callback)


def euclidean_rk4(field: Field, x: Tensor, grid: Tensor, callback: Callback = None) -> Tensor:
    return _march(lambda x, g, g1: _rk4_increment(field, x, g, g1 - g), x, grid, callback)


def ddim(denoise: Callable[[Tensor, Tensor], tuple[Tensor, Tensor]], x: Tensor, grid: Tensor,
         callback: Callback = None) -> Tensor:
    """Deterministic DDIM (eta = 0) for the variance-preserving diffusion path.

    ``denoise(x, gamma) -> (x1_hat, eps_hat)``; each step re-noises the current clean estimate to
    the next level with the current noise estimate: ``x <- sqrt(g') x1_hat + sqrt(1 - g') eps_hat``.
    """
    def step(x, g, g_next):
        x1_hat, eps_hat = denoise(x, g)
        return g_next.sqrt() * x1_hat + (1 - g_next).clamp_min(0).sqrt() * eps_hat

    return _march(step, x, grid, callback)


_SPHERE = {"euler": sphere_euler, "midpoint": sphere_midpoint, "rk4": sphere_rk4}
_EUCLID = {"euler": euclidean_euler, "midpoint": euclidean_midpoint, "rk4": euclidean_rk4}


def solve(field: Field, x: Tensor, grid: Tensor, *, method: str = "euler", space: str = "sphere",
          step: Step = "exp", callback: Callback = None) -> Tensor:
    """Integrate ``field`` over ``grid`` with the named method in the given space."""
    if method not in METHODS:
        raise ValueError(f"unknown solver {method!r}; expected one of {', '.join(METHODS)}")
    if space == "sphere":
        return _SPHERE[method](field, x, grid, callback=callback, step=step)
    if space == "euclidean":
        return _EUCLID[method](field, x, grid, callback=callback)
    raise ValueError(f"unknown space {space!r}; expected 'sphere' or 'euclidean'")
