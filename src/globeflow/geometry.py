"""Geometry of the unit sphere S^2 embedded in R^3.

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
    "EARTH_RADIUS_KM",
    "SPHERE_AREA",
    "latlon_to_xyz",
    "xyz_to_latlon",
    "projx",
    "proju",
    "inner",
    "dist",
    "haversine_km",
    "expmap",
    "logmap",
    "retraction",
    "tangent_basis",
    "geodesic",
    "geodesic_velocity",
    "uniform",
    "vmf_sample",
    "vmf_log_prob",
    "check_point",
    "check_tangent",
]

EARTH_RADIUS_KM = 6371.0
SPHERE_AREA = 4.0 * math.pi

# Below these norms a tangent vector is treated as zero and expmap/logmap fall back to first order
# (sin(t)/t -> 1): the closed forms lose all precision there anyway.
_EPS = {torch.float16: 1e-3, torch.bfloat16: 1e-3, torch.float32: 1e-6, torch.float64: 1e-12}


def _eps(x: Tensor) -> float:
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
    safe = norm > _eps(x)
    return torch.where(safe, x / norm.clamp_min(_eps(x)), pole)


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


def haversine_km(latlon_a: Tensor, latlon_b: Tensor, radius: float = EARTH_RADIUS_KM) -> Tensor:
    """Great-circle distance in km between degrees ``(..., 2)`` and ``(..., 2)``.

    The haversine formula with its argument clamped to [0, 1], so rounding never yields NaN.
    """
    lat1, lon1 = torch.deg2rad(latlon_a[..., 0]), torch.deg2rad(latlon_a[..., 1])
    lat2, lon2 = torch.deg2rad(latlon_b[..., 0]), torch.deg2rad(latlon_b[..., 1])
    h = torch.sin((lat2 - lat1) / 2) ** 2 + torch.cos(lat1) * torch.cos(lat2) * torch.sin((lon2 - lon1) / 2) ** 2
    return 2.0 * radius * torch.asin(h.clamp(0.0, 1.0).sqrt())


def expmap(x: Tensor, v: Tensor) -> Tensor:
    """Exponential map: follow the great circle from ``x`` with initial velocity ``v`` for unit time."""
    norm = v.norm(dim=-1, keepdim=True)
    small = norm < _eps(x)
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
    degenerate = u_norm < _eps(x)
    direction = torch.where(degenerate, fallback, u / u_norm.clamp_min(_eps(x)))
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
    e1 = e1 / e1.norm(dim=-1, keepdim=True).clamp_min(_eps(x))
    return e1, torch.linalg.cross(x, e1, dim=-1)


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
    e = v / theta.clamp_min(_eps(x0))
    angle = t.unsqueeze(-1) * theta
    xt = projx(torch.cos(angle) * x0 + torch.sin(angle) * e)
    dxt = theta * (-torch.sin(angle) * x0 + torch.cos(angle) * e)
    return xt, proju(xt, dxt)


def uniform(shape: tuple[int, ...] | torch.Size, *, generator: torch.Generator | None = None,
            device: torch.device | str | None = None, dtype: torch.dtype = torch.float32) -> Tensor:
    """Uniform points on the sphere, ``shape + (3,)`` (normalised Gaussians)."""
    z = torch.randn(*shape, 3, generator=generator, device=device, dtype=dtype)
    return projx(z)


def _log_c3_shifted(kappa: Tensor) -> Tensor:
    """``log C(kappa) + kappa`` where ``C = kappa / (4 pi sinh kappa)`` is the vMF normaliser on S^2.

    Equal to ``log kappa - log 2 pi - log(1 - exp(-2 kappa))``: no sinh overflow for large ``kappa``,
    and the limit ``kappa -> 0`` is the uniform ``-log 4 pi``.
    """
    small = kappa < 1e-6
    k = torch.where(small, torch.ones_like(kappa), kappa)
    value = torch.log(k) - math.log(2 * math.pi) - torch.log(-torch.expm1(-2 * k))
    return torch.where(small, torch.full_like(kappa, -math.log(4 * math.pi)), value)


def vmf_log_prob(x: Tensor, mu: Tensor, kappa: Tensor | float) -> Tensor:
    """von Mises-Fisher log-density on S^2 in nats per steradian.

    Args:
        x (Tensor): ``(..., 3)`` unit vectors.
        mu (Tensor): ``(..., 3)`` unit mean directions.
        kappa (Tensor | float): ``(...)`` concentrations, ``>= 0``.
    Returns:
        Tensor: ``(...)``. Written as ``log C + kappa + kappa (mu.x - 1)``: the last term is
        ``<= 0``, so nothing overflows even for ``kappa`` in the thousands.
    """
    kappa = torch.as_tensor(kappa, dtype=x.dtype, device=x.device)
    return _log_c3_shifted(kappa) + kappa * (inner(mu, x) - 1.0)


def vmf_sample(mu: Tensor, kappa: Tensor | float, num_samples: int | None = None, *,
               generator: torch.Generator | None = None) -> Tensor:
    """Exact samples of the von Mises-Fisher distribution on S^2.

    On S^2 the cosine ``w = mu.x`` has density proportional to ``exp(kappa w)`` on [-1, 1], whose
    inverse CDF is ``w = 1 + log(u + (1 - u) exp(-2 kappa)) / kappa``; the direction orthogonal to
    ``mu`` is uniform.

    Args:
        mu (Tensor): ``(..., 3)`` unit mean directions.
        kappa (Tensor | float): ``(...)`` concentrations (0 gives uniform samples).
        num_samples: if given, draw this many per mean: output ``(..., num_samples, 3)``.
    Returns:
        Tensor: ``(..., 3)`` or ``(..., num_samples, 3)`` unit vectors.
    """
    if num_samples is not None:
        mu = mu.unsqueeze(-2).expand(*mu.shape[:-1], num_samples, 3)
    kappa = torch.as_tensor(kappa, dtype=mu.dtype, device=mu.device)
    if num_samples is not None and kappa.dim() > 0:
        kappa = kappa.unsqueeze(-1)
    kappa = kappa.expand(mu.shape[:-1])
    u = torch.rand(mu.shape[:-1], generator=generator, dtype=mu.dtype, device=mu.device)
    small = kappa < 1e-6
    k = torch.where(small, torch.ones_like(kappa), kappa)
    w = 1.0 + torch.log(u + (1.0 - u) * torch.exp(-2.0 * k)) / k
    w = torch.where(small, 2.0 * u - 1.0, w).clamp(-1.0, 1.0)
    # A uniform direction in the tangent plane of mu.
    z = torch.randn(mu.shape, generator=generator, dtype=mu.dtype, device=mu.device)
    t = proju(mu, z)
    t = t / t.norm(dim=-1, keepdim=True).clamp_min(_eps(mu))
    x = w.unsqueeze(-1) * mu + torch.sqrt((1.0 - w * w).clamp_min(0.0)).unsqueeze(-1) * t
    return projx(x)


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
