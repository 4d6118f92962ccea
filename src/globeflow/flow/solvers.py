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
component of the state). :func:`solve_adaptive` integrates the same pair with an embedded
Runge-Kutta pair (Bogacki-Shampine 3(2), Dormand-Prince 5(4)) and per-row error control. DDIM (:func:`ddim`) is the diffusion variant's own fixed-grid scheme.
"""

from __future__ import annotations

from typing import Callable, Literal, NamedTuple, Optional

import torch
from torch import Tensor

from .. import geo
from ..geo.manifold import SPHERE, Manifold

__all__ = ["Field", "AugmentedField", "Callback", "Method", "METHODS", "rotate", "solve", "solve_augmented",
           "solve_adaptive", "RowField", "Embedded", "PAIRS", "AdaptiveResult", "ddim", "sphere_euler", "sphere_midpoint", "sphere_rk4", "euclidean_euler",
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


# --- adaptive: embedded Runge-Kutta pairs with per-row step-size control --------------------------------------------


#: ``(x (M, 3), gamma (M,), rows (M,) int64) -> (dx/dgamma (M, 3), dL/dgamma (M,))``: an augmented field
#: evaluated on a subset of rows, each at its own signal level (``rows`` index the caller's rows).
RowField = Callable[[Tensor, Tensor, Tensor], tuple[Tensor, Tensor]]


class Embedded:
    """An explicit Runge-Kutta pair: stages ``c``, ``a``; weights ``b`` of the propagated solution (order
    ``order``) and ``e = b - b_hat`` of its error estimate (the embedded solution has order ``order - 1``).
    ``fsal``: the last stage is evaluated at the new state, so it is the next step's first."""

    def __init__(self, name: str, order: int, c: list[float], a: list[list[float]], b: list[float],
                 b_hat: list[float]):
        self.name, self.order, self.c, self.a, self.b = name, order, c, a, b
        self.e = [p - q for p, q in zip(b, b_hat)]
        self.fsal = list(a[-1]) + [0.0] * (len(b) - len(a[-1])) == list(b)


#: The adaptive pairs by name: Bogacki-Shampine 3(2) and Dormand-Prince 5(4), both FSAL.
PAIRS: dict[str, Embedded] = {p.name: p for p in (
    Embedded("bosh3", 3, [0, 1 / 2, 3 / 4, 1], [[], [1 / 2], [0, 3 / 4], [2 / 9, 1 / 3, 4 / 9]],
             [2 / 9, 1 / 3, 4 / 9, 0], [7 / 24, 1 / 4, 1 / 3, 1 / 8]),
    Embedded("dopri5", 5, [0, 1 / 5, 3 / 10, 4 / 5, 8 / 9, 1, 1],
             [[], [1 / 5], [3 / 40, 9 / 40], [44 / 45, -56 / 15, 32 / 9],
              [19372 / 6561, -25360 / 2187, 64448 / 6561, -212 / 729],
              [9017 / 3168, -355 / 33, 46732 / 5247, 49 / 176, -5103 / 18656],
              [35 / 384, 0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84]],
             [35 / 384, 0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84, 0],
             [5179 / 57600, 0, 7571 / 16695, 393 / 640, -92097 / 339200, 187 / 2100, 1 / 40]),
)}


class AdaptiveResult(NamedTuple):
    """What :func:`solve_adaptive` returns, per row ``(...)`` of the input: the final points ``x``,
    the change of ``L``, ``error``: the sum over accepted steps of the local error estimates of ``L``
    (an estimate of its global error: local errors add up along a non-stiff trajectory), ``steps``:
    accepted steps, and ``evaluations``: the field evaluations of all rows together."""

    x: Tensor
    change: Tensor
    error: Tensor
    steps: Tensor
    evaluations: int


def solve_adaptive(field: RowField, x: Tensor, g_start: float, g_end: float, *, rtol: float, atol: float,
                   method: str = "dopri5", space: Manifold = SPHERE, max_step: float = 0.125,
                   max_steps: int = 10_000) -> AdaptiveResult:
    """Integrate ``(x, L)`` from ``g_start`` to ``g_end`` (either direction) with an embedded pair of
    :data:`PAIRS` and error control on the whole augmented state, each row with its own step size.

    A row's step is accepted when ``max_i |err_i| / (atol + rtol |y_i|) <= 1`` over its three
    coordinates and ``L``; the next step is ``h (0.9 / err)^(1 / order)``, within [0.2 h, 5 h]. Rows
    advance independently (a trajectory that crosses a divergence spike takes small steps there
    without slowing the others), and each iteration evaluates only the rows still running. Stage
    points and accepted points are projected onto ``space`` (the retraction scheme of
    :func:`solve_augmented`).

    ``max_step`` bounds every step, as a fraction of ``|g_end - g_start|``: a controller only sees the
    field at its stage points, so a burst narrower than a step could fall between them unseen, and
    a trained field is smooth nowhere long enough to be worth more.
    """
    if method not in PAIRS:
        raise ValueError(f"unknown adaptive solver {method!r}; expected one of {', '.join(PAIRS)}")
    if not (rtol > 0 and atol > 0):
        raise ValueError(f"tolerances must be > 0, got rtol={rtol}, atol={atol}")
    pair, shape = PAIRS[method], x.shape[:-1]
    y = x.reshape(-1, 3).clone()
    n, span = y.shape[0], g_end - g_start
    L = torch.zeros(n, dtype=y.dtype, device=y.device)
    err_sum, steps = torch.zeros_like(L), torch.zeros(n, dtype=torch.int64, device=y.device)
    t = torch.full_like(L, g_start)
    rows = torch.arange(n, device=y.device)
    if n == 0 or span == 0:
        return AdaptiveResult(x, L.reshape(shape), err_sum.reshape(shape), steps.reshape(shape), 0)
    kx, kl = field(space.projx(y), t, rows)
    evaluations = n
    # First step: tol^(1 / order) of the time the fastest component needs to move by one unit.
    speed = kx.abs().amax(-1).maximum(kl.abs()).clamp_min(1e-6)
    h_max = abs(span) * min(max(max_step, 0.0), 1.0) or abs(span)
    h = ((atol + rtol) ** (1 / pair.order) / speed).clamp(max=h_max)
    h = h if span > 0 else -h
    active = rows
    for _ in range(max_steps):
        if active.numel() == 0:
            break
        yi, li, ti = y[active], L[active], t[active]
        hi = torch.where((ti + h[active] - g_end) * span > 0, g_end - ti, h[active])
        ks = [(kx[active], kl[active])]
        for s in range(1, len(pair.c)):
            ys = yi + hi[:, None] * sum(w * k[0] for w, k in zip(pair.a[s], ks) if w)
            ls = li + hi * sum(w * k[1] for w, k in zip(pair.a[s], ks) if w)
            if pair.fsal and s == len(pair.c) - 1:
                y_new, l_new = ys, ls
            ks.append(field(space.projx(ys), ti + pair.c[s] * hi, active))
            evaluations += active.numel()
        if not pair.fsal:
            y_new = yi + hi[:, None] * sum(w * k[0] for w, k in zip(pair.b, ks) if w)
            l_new = li + hi * sum(w * k[1] for w, k in zip(pair.b, ks) if w)
        ex = hi[:, None] * sum(w * k[0] for w, k in zip(pair.e, ks) if w)
        el = hi * sum(w * k[1] for w, k in zip(pair.e, ks) if w)
        ratio = torch.maximum((ex.abs() / (atol + rtol * yi.abs().maximum(y_new.abs()))).amax(-1),
                              el.abs() / (atol + rtol * li.abs().maximum(l_new.abs())))
        ok = ratio <= 1.0
        acc = active[ok]
        y[acc], L[acc], t[acc] = space.projx(y_new[ok]), l_new[ok], ti[ok] + hi[ok]
        err_sum[acc] += el[ok].abs()
        steps[acc] += 1
        if pair.fsal:
            kx[acc], kl[acc] = ks[-1][0][ok], ks[-1][1][ok]
        elif acc.numel():
            kx[acc], kl[acc] = field(space.projx(y[acc]), t[acc], acc)
            evaluations += acc.numel()
        factor = (0.9 * ratio.clamp_min(1e-10) ** (-1.0 / pair.order)).clamp(0.2, 5.0)
        h[active] = (hi * torch.where(ok, factor, factor.clamp(max=1.0))).clamp(-h_max, h_max)
        finished = ok & ((g_end - t[active]) * span <= 1e-12 * abs(span))
        active = active[~finished]
    else:
        raise RuntimeError(f"adaptive solver: {active.numel()} rows not finished after {max_steps} steps "
                           f"(rtol={rtol}, atol={atol}); the field is too stiff for these tolerances")
    return AdaptiveResult(y.reshape(*shape, 3), L.reshape(shape), err_sum.reshape(shape), steps.reshape(shape),
                          evaluations)


def ddim(denoise: Callable[[Tensor, Tensor], tuple[Tensor, Tensor]], x: Tensor, grid: Tensor,
         callback: Callback = None, space: Manifold = geo.EUCLIDEAN) -> Tensor:
    """Deterministic DDIM (eta = 0) for the variance-preserving diffusion path.

    ``denoise(x, gamma) -> (x1_hat, eps_hat)``; each step re-noises the current clean estimate to
    the next level with the current noise estimate: ``x <- sqrt(g') x1_hat + sqrt(1 - g') eps_hat``,
    then projects it onto ``space`` (R^3: unchanged; the sphere: every step's result normalised).
    """
    def step(x, g, g_next):
        x1_hat, eps_hat = denoise(x, g)
        return space.projx(g_next.sqrt() * x1_hat + (1 - g_next).clamp_min(0).sqrt() * eps_hat)

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
