"""Geometry of the unit sphere S^2 embedded in R^3: coordinates, projections, exp / log maps, geodesics.

Points are unit vectors ``x`` of shape ``(..., 3)``; tangent vectors at ``x`` are ``v`` with
``<x, v> = 0``. Geographic coordinates are degrees, latitude in [-90, 90] and longitude in
[-180, 180]; ``x = (cos lat cos lon, cos lat sin lon, sin lat)``.

Every ``acos``/``asin`` is clamped and every division guarded, so antipodes, the poles and the
antimeridian never produce NaN: a function here returns NaN only when it is given NaN.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = [
    "SPHERE_AREA",
    "latlon_to_xyz",
    "xyz_to_latlon",
    "projx",
    "proju",
    "inner",
    "dist",
    "expmap",
    "logmap",
    "retraction",
    "tangent_basis",
    "points_around",
    "geodesic",
    "geodesic_velocity",
    "check_point",
    "check_tangent",
    "eps",
]

SPHERE_AREA = 4.0 * math.pi

# Below these norms a tangent vector is treated as zero and expmap/logmap fall back to first order
# (sin(t)/t -> 1): the closed forms lose all precision there anyway.
_EPS = {torch.float16: 1e-3, torch.bfloat16: 1e-3, torch.float32: 1e-6, torch.float64: 1e-12}


def eps(x: Tensor) -> float:
    """The norm below which a vector of ``x``'s dtype is treated as zero."""
    return _EPS.get(x.dtype, 1e-6)


def inner(u: Tensor, v: Tensor, keepdim: bool = False) -> Tensor:
    """Euclidean inner product over the last axis: ``(..., 3), (..., 3) -> (...)``."""
    return (u * v).sum(dim=-1, keepdim=keepdim)


def latlon_to_xyz(latlon: Tensor) -> Tensor:
    """Degrees ``(..., 2)`` as (lat, lon) -> unit vectors ``(..., 3)``."""
    lat = torch.deg2rad(latlon[..., 0])
    lon = torch.deg2rad(latlon[..., 1])
    cos_lat = torch.cos(lat)
    return torch.stack((cos_lat * torch.cos(lon), cos_lat * torch.sin(lon), torch.sin(lat)), dim=-1)


def xyz_to_latlon(x: Tensor) -> Tensor:
    """Vectors ``(..., 3)`` (normalised here) -> degrees ``(..., 2)``, lon in [-180, 180]."""
    x = projx(x)
    lat = torch.asin(x[..., 2].clamp(-1.0, 1.0))
    lon = torch.atan2(x[..., 1], x[..., 0])
    return torch.rad2deg(torch.stack((lat, lon), dim=-1))


def projx(x: Tensor) -> Tensor:
    """Project points of R^3 onto the sphere. The origin maps to the north pole, not to NaN."""
    norm = x.norm(dim=-1, keepdim=True)
    pole = torch.zeros_like(x)
    pole[..., 2] = 1.0
    safe = norm > eps(x)
    return torch.where(safe, x / norm.clamp_min(eps(x)), pole)


def proju(x: Tensor, u: Tensor) -> Tensor:
    """Project ``u (..., 3)`` onto the tangent space at ``x (..., 3)``: ``(I - x x^T) u``."""
    return u - inner(x, u, keepdim=True) * x


def dist(x: Tensor, y: Tensor) -> Tensor:
    """Great-circle angle in radians, ``(..., 3), (..., 3) -> (...)``.

    Uses ``atan2(|x cross y|, x.y)``, accurate for nearly equal and nearly antipodal points alike
    (``acos`` of the dot product loses half the digits near 0 and pi).
    """
    cross = torch.linalg.cross(x, y, dim=-1).norm(dim=-1)
    return torch.atan2(cross, inner(x, y))


def expmap(x: Tensor, v: Tensor) -> Tensor:
    """Exponential map: follow the great circle from ``x`` with initial velocity ``v`` for unit time."""
    norm = v.norm(dim=-1, keepdim=True)
    small = norm < eps(x)
    safe = torch.where(small, torch.ones_like(norm), norm)
    out = torch.cos(norm) * x + torch.sin(safe) / safe * v
    # First order for tiny steps, then renormalise: rounding must not drift off the sphere.
    out = torch.where(small, x + v, out)
    return projx(out)


def logmap(x: Tensor, y: Tensor) -> Tensor:
    """Logarithm map: the tangent vector at ``x`` pointing to ``y`` with length ``dist(x, y)``.

    At the antipode the direction is not unique; any unit tangent direction is a valid answer and
    the result has norm ``pi`` (the component of an arbitrary axis orthogonal to ``x``).
    """
    u = proju(x, y - x)
    u_norm = u.norm(dim=-1, keepdim=True)
    theta = dist(x, y).unsqueeze(-1)
    fallback = tangent_basis(x)[0]  # antipodal case: any unit tangent direction
    degenerate = u_norm < eps(x)
    direction = torch.where(degenerate, fallback, u / u_norm.clamp_min(eps(x)))
    # Coincident points: theta ~ 0, so the fallback direction is multiplied by ~0.
    return theta * direction


def tangent_basis(x: Tensor) -> tuple[Tensor, Tensor]:
    """An orthonormal basis ``(e1, e2)`` of the tangent plane at each unit vector ``x (..., 3)``.

    ``e1`` is the projection of the coordinate axis least aligned with ``x`` (never parallel to it),
    ``e2 = x cross e1``.
    """
    axis = torch.zeros_like(x)
    axis.scatter_(-1, x.abs().argmin(dim=-1, keepdim=True), 1.0)
    e1 = proju(x, axis)
    e1 = e1 / e1.norm(dim=-1, keepdim=True).clamp_min(eps(x))
    return e1, torch.linalg.cross(x, e1, dim=-1)


def points_around(x: Tensor, angle: Tensor, bearing: Tensor) -> Tensor:
    """Points at great-circle ``angle`` (radians) from the unit vector ``x (3,)``, in the tangent
    directions ``bearing`` (radians from :func:`tangent_basis`'s ``e1``): ``angle``, ``bearing`` of one
    shape ``(N,)`` (or broadcastable) -> ``(N, 3)``. A circle for one angle and many bearings."""
    angle, bearing = torch.broadcast_tensors(angle.to(x.dtype), bearing.to(x.dtype))
    e1, e2 = tangent_basis(x)
    v = angle[..., None] * (torch.cos(bearing)[..., None] * e1 + torch.sin(bearing)[..., None] * e2)
    return expmap(x.expand_as(v), v)


def retraction(x: Tensor, v: Tensor) -> Tensor:
    """First-order retraction ``projx(x + v)``: cheaper than :func:`expmap`, same first order."""
    return projx(x + v)


def geodesic(x0: Tensor, x1: Tensor, t: Tensor) -> Tensor:
    """Point at fraction ``t (...)`` along the shortest great circle from ``x0`` to ``x1``."""
    return expmap(x0, t.unsqueeze(-1) * logmap(x0, x1))


def geodesic_velocity(x0: Tensor, x1: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
    """Point ``x_t`` on the geodesic and its velocity ``d x_t / d t`` (a tangent vector at ``x_t``).

    With ``theta = dist(x0, x1)`` and ``e`` the unit tangent at ``x0`` towards ``x1``:
    ``x_t = cos(t theta) x0 + sin(t theta) e`` and ``dx_t/dt = theta (-sin(t theta) x0 + cos(t theta) e)``,
    whose norm is ``theta`` for every ``t``.
    """
    v = logmap(x0, x1)
    theta = v.norm(dim=-1, keepdim=True)
    e = v / theta.clamp_min(eps(x0))
    angle = t.unsqueeze(-1) * theta
    xt = projx(torch.cos(angle) * x0 + torch.sin(angle) * e)
    dxt = theta * (-torch.sin(angle) * x0 + torch.cos(angle) * e)
    return xt, proju(xt, dxt)


def check_point(x: Tensor, atol: float | None = None, explain: bool = False) -> bool | tuple[bool, str | None]:
    """Whether every row of ``x (..., 3)`` is a finite unit vector; with ``explain``, also why not."""
    atol = atol if atol is not None else (1e-5 if x.dtype != torch.float64 else 1e-10)
    reason = None
    if x.shape[-1] != 3:
        reason = f"last dimension is {x.shape[-1]}, expected 3"
    elif not torch.isfinite(x).all():
        reason = f"{int((~torch.isfinite(x)).any(dim=-1).sum())} point(s) are not finite"
    else:
        err = (x.norm(dim=-1) - 1.0).abs().max().item() if x.numel() else 0.0
        if err > atol:
            reason = f"norm deviates from 1 by {err:.3g} > {atol:.3g}"
    ok = reason is None
    return (ok, reason) if explain else ok


def check_tangent(x: Tensor, v: Tensor, atol: float | None = None,
                  explain: bool = False) -> bool | tuple[bool, str | None]:
    """Whether ``v (..., 3)`` is tangent to the sphere at ``x (..., 3)``; with ``explain``, also why not."""
    atol = atol if atol is not None else (1e-5 if x.dtype != torch.float64 else 1e-10)
    err = inner(x, v).abs().max().item() if v.numel() else 0.0
    reason = None if err <= atol else f"<x, v> is {err:.3g} > {atol:.3g}"
    ok = reason is None
    return (ok, reason) if explain else ok
