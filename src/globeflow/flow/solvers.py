"""ODE solvers: every integration globeflow does, sampling and likelihood, plain and augmented states.

All fixed-grid solvers share one signature, ``solver(field, x, grid, callback=None) -> x``:

- ``field(x (N, 3), gamma (scalar Tensor)) -> (N, 3)`` is ``dx/dgamma``; on the sphere it must be
  tangent at ``x`` (the model's fields are projected).
- ``grid (steps + 1,)`` holds the signal levels to step through, from noise to data.
- ``callback(i, gamma, x)``, if given, sees the state after each step.

The state lives on a space, a :class:`~globeflow.geo.manifold.Manifold` (the sphere or R^3), and a
method is one Runge-Kutta tableau (:data:`METHODS`: Euler, midpoint, RK4) whose loop is written once
(:func:`_march`). On the sphere a method steps in one of two ways, chosen with ``step``:

``"exp"`` (default): Runge-Kutta-Munthe-Kaas. A tangent field ``v`` at ``x`` is the rotation with
angular velocity ``w = x cross v``; each step rotates the points (the exponential map of SO(3), which
moves a point along the great circle of its velocity), so states never leave the sphere and Euler is
the geodesic step ``exp_x(h v)``. RK4 uses the truncated inverse derivative of the exponential,
``dexpinv_W(U) = U - W x U / 2 + W x (W x U) / 12``, which keeps fourth order.

``"retraction"``: the tableau in R^3 on the field extended radially, ``v(x / |x|)``: each stage point
is projected before the field is evaluated there, and the result of each step is projected. That
extension's flow preserves ``|x|``, so the method keeps its order.

**Augmented states.** The likelihood integrates ``(x, L)`` with ``dx/dgamma = v`` and ``dL/dgamma =
div v``: an *augmented field* returns ``(v, d)`` and :func:`solve_augmented` steps the pair with the
retraction scheme, ``L`` accumulating with the same tableau weights (the log-density is a second
component of the state). :func:`solve_adaptive` does the same with torchdiffeq's Dormand-Prince
(dopri5) and error control. DDIM (:func:`ddim`) is the diffusion variant's own fixed-grid scheme.
"""

from __future__ import annotations

from typing import Callable, Literal, Optional

import torch
from torch import Tensor

from .. import geo
from ..geo.manifold import SPHERE, Manifold

__all__ = ["Field", "AugmentedField", "Callback", "Method", "METHODS", "rotate", "solve", "solve_augmented",
           "solve_adaptive", "ddim", "sphere_euler", "sphere_midpoint", "sphere_rk4", "euclidean_euler",
           "euclidean_midpoint", "euclidean_rk4"]

Field = Callable[[Tensor, Tensor], Tensor]
#: ``(x (..., 3), gamma) -> (dx/dgamma (..., 3), dL/dgamma (...))``.
AugmentedField = Callable[[Tensor, Tensor], tuple[Tensor, Tensor]]
Callback = Optional[Callable[[int, Tensor, Tensor], None]]
Step = Literal["exp", "retraction"]
#: A state as a tuple of tensors: ``(x,)`` or ``(x, L)``; a stage function maps it to its derivative.
State = tuple[Tensor, ...]
StageFn = Callable[[State, Tensor], State]


# --- Runge-Kutta tableaux -------------------------------------------------------------------------------------------


class Method:
    """One explicit Runge-Kutta method: its order, its step on a tuple state in R^n (``ambient``),
    and its Munthe-Kaas step on the sphere (``rotation``: the rotation vector of one step, from the
    angular velocity ``omega(x, gamma)``)."""

    name: str
    order: int

    def ambient(self, f: StageFn, y: State, g: Tensor, h: Tensor) -> State:
        raise NotImplementedError

    def rotation(self, omega: Field, x: Tensor, g: Tensor, h: Tensor) -> Tensor:
        raise NotImplementedError


class Euler(Method):
    name, order = "euler", 1

    def ambient(self, f, y, g, h):
        return tuple(a + h * k for a, k in zip(y, f(y, g)))

    def rotation(self, omega, x, g, h):
        return h * omega(x, g)


class Midpoint(Method):
    name, order = "midpoint", 2

    def ambient(self, f, y, g, h):
        k1 = f(y, g)
        k2 = f(tuple(a + 0.5 * h * k for a, k in zip(y, k1)), g + 0.5 * h)
        return tuple(a + h * k for a, k in zip(y, k2))

    def rotation(self, omega, x, g, h):
        return h * omega(rotate(x, 0.5 * h * omega(x, g)), g + 0.5 * h)


class RK4(Method):
    name, order = "rk4", 4

    def ambient(self, f, y, g, h):
        k1 = f(y, g)
        k2 = f(tuple(a + 0.5 * h * k for a, k in zip(y, k1)), g + 0.5 * h)
        k3 = f(tuple(a + 0.5 * h * k for a, k in zip(y, k2)), g + 0.5 * h)
        k4 = f(tuple(a + h * k for a, k in zip(y, k3)), g + h)
        return tuple(a + h / 6 * (b1 + 2 * b2 + 2 * b3 + b4) for a, b1, b2, b3, b4 in zip(y, k1, k2, k3, k4))

    def rotation(self, omega, x, g, h):
        k1 = omega(x, g)
        k2 = _dexpinv(0.5 * h * k1, omega(rotate(x, 0.5 * h * k1), g + 0.5 * h))
        k3 = _dexpinv(0.5 * h * k2, omega(rotate(x, 0.5 * h * k2), g + 0.5 * h))
        k4 = _dexpinv(h * k3, omega(rotate(x, h * k3), g + h))
        return h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)


#: The fixed-grid methods by name.
METHODS: dict[str, Method] = {m.name: m for m in (Euler(), Midpoint(), RK4())}


def _method(name: str) -> Method:
    if name not in METHODS:
        raise ValueError(f"unknown solver {name!r}; expected one of {', '.join(METHODS)}")
    return METHODS[name]


# --- rotations (Munthe-Kaas) ----------------------------------------------------------------------------------------


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


def _dexpinv(w: Tensor, u: Tensor) -> Tensor:
    wu = torch.linalg.cross(w, u, dim=-1)
    return u - 0.5 * wu + torch.linalg.cross(w, wu, dim=-1) / 12.0


# --- the loop, written once -----------------------------------------------------------------------------------------


def _march(step: Callable[[Tensor, Tensor, Tensor], Tensor], x: Tensor, grid: Tensor, callback: Callback) -> Tensor:
    """Apply ``x <- step(x, gamma_i, gamma_{i+1})`` along the grid."""
    for i in range(len(grid) - 1):
        x = step(x, grid[i], grid[i + 1])
        if callback is not None:
            callback(i, grid[i + 1], x)
    return x


def solve(field: Field, x: Tensor, grid: Tensor, *, method: str = "euler", space: Manifold = SPHERE,
          step: Step = "exp", callback: Callback = None) -> Tensor:
    """Integrate ``field`` over ``grid`` with the named method on ``space``.

    Args:
        space: :data:`~globeflow.geo.manifold.SPHERE` (``step`` chooses Munthe-Kaas rotations or the
            retraction) or :data:`~globeflow.geo.manifold.EUCLIDEAN` (plain Runge-Kutta in R^3).
    """
    m = _method(method)
    if step not in ("exp", "retraction"):
        raise ValueError(f"unknown sphere step {step!r}; expected 'exp' or 'retraction'")
    if space is SPHERE and step == "exp":
        def omega(y: Tensor, g: Tensor) -> Tensor:
            # The angular velocity of the tangent field at y: y cross v (so that w cross y = v).
            return torch.linalg.cross(y, field(y, g), dim=-1)

        return _march(lambda y, g, g1: rotate(y, m.rotation(omega, y, g, g1 - g)), x, grid, callback)

    def stage(y: State, g: Tensor) -> State:
        return (field(space.projx(y[0]), g),)

    return _march(lambda y, g, g1: space.projx(m.ambient(stage, (y,), g, g1 - g)[0]), x, grid, callback)


def solve_augmented(field: AugmentedField, x: Tensor, grid: Tensor, *, method: str = "rk4",
                    space: Manifold = SPHERE) -> tuple[Tensor, Tensor]:
    """Integrate ``(x, L)`` with ``dx/dgamma, dL/dgamma = field(x, gamma)`` over ``grid`` (either
    direction), stage points and steps projected onto ``space``.

    ``x`` is ``(..., 3)``; returns the final ``x`` and the change of ``L``, ``(...)``.
    """
    m = _method(method)

    def stage(y: State, g: Tensor) -> State:
        return field(space.projx(y[0]), g)

    state: State = (x, torch.zeros(x.shape[:-1], dtype=x.dtype, device=x.device))
    for i in range(len(grid) - 1):
        g, h = grid[i], grid[i + 1] - grid[i]
        y, change = m.ambient(stage, state, g, h)
        state = (space.projx(y), change)
    return state[0], state[1]


def solve_adaptive(field: AugmentedField, x: Tensor, g_start: float, g_end: float, *, rtol: float, atol: float,
                   space: Manifold = SPHERE) -> tuple[Tensor, Tensor]:
    """:func:`solve_augmented` from ``g_start`` to ``g_end`` with adaptive Dormand-Prince steps
    (torchdiffeq's dopri5, relative and absolute tolerances ``rtol``, ``atol``)."""
    from torchdiffeq import odeint  # its import costs ~2 s; only adaptive likelihoods need it

    def rhs(g: Tensor, state: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
        return field(space.projx(state[0]), g)

    t = torch.tensor([g_start, g_end], dtype=x.dtype, device=x.device)
    state = (x, torch.zeros(x.shape[:-1], dtype=x.dtype, device=x.device))
    xs, changes = odeint(rhs, state, t, rtol=rtol, atol=atol, method="dopri5")
    return space.projx(xs[-1]), changes[-1]


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


# --- the named samplers (one signature) -----------------------------------------------------------------------------


def sphere_euler(field: Field, x: Tensor, grid: Tensor, callback: Callback = None, step: Step = "exp") -> Tensor:
    """First order: ``x <- exp_x(h v(x))`` (or ``projx(x + h v)`` with ``step="retraction"``)."""
    return solve(field, x, grid, method="euler", step=step, callback=callback)


def sphere_midpoint(field: Field, x: Tensor, grid: Tensor, callback: Callback = None, step: Step = "exp") -> Tensor:
    """Second order, two field evaluations per step."""
    return solve(field, x, grid, method="midpoint", step=step, callback=callback)


def sphere_rk4(field: Field, x: Tensor, grid: Tensor, callback: Callback = None, step: Step = "exp") -> Tensor:
    """Fourth order, four field evaluations per step (RKMK4 with ``step="exp"``)."""
    return solve(field, x, grid, method="rk4", step=step, callback=callback)


def euclidean_euler(field: Field, x: Tensor, grid: Tensor, callback: Callback = None) -> Tensor:
    return solve(field, x, grid, method="euler", space=geo.EUCLIDEAN, callback=callback)


def euclidean_midpoint(field: Field, x: Tensor, grid: Tensor, callback: Callback = None) -> Tensor:
    return solve(field, x, grid, method="midpoint", space=geo.EUCLIDEAN, callback=callback)


def euclidean_rk4(field: Field, x: Tensor, grid: Tensor, callback: Callback = None) -> Tensor:
    return solve(field, x, grid, method="rk4", space=geo.EUCLIDEAN, callback=callback)
