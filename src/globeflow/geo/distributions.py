"""Distributions on the sphere: uniform and von Mises-Fisher, exact samples and log-densities.

Densities are in nats per steradian of the unit sphere; points are unit vectors ``(..., 3)``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .sphere import eps, inner, proju, projx

__all__ = ["LOG_UNIFORM", "uniform", "vmf_log_prob", "vmf_sample"]

#: Log-density of the uniform distribution on S^2, ``-log 4 pi`` nats per steradian.
LOG_UNIFORM = -math.log(4.0 * math.pi)


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
    t = t / t.norm(dim=-1, keepdim=True).clamp_min(eps(mu))
    x = w.unsqueeze(-1) * mu + torch.sqrt((1.0 - w * w).clamp_min(0.0)).unsqueeze(-1) * t
    return projx(x)
