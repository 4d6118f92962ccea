"""Probability paths of the three generative variants: how training pairs are built and what the
network's output means.

Each path maps a clean location ``x1`` (unit vector), a signal level ``gamma`` and prior noise
``x0`` to a noisy point ``x_gamma`` and a regression target; and it turns a network output at
``(x, gamma)`` into the velocity ``dx/dgamma`` that a sampler integrates from ``gamma ~ 0`` (noise)
to ``gamma = 1`` (data). Network outputs enter every formula linearly, which is why
classifier-free guidance can mix raw outputs for all three.

- :class:`SpherePath` (Riemannian flow matching on S^2): uniform prior on the sphere, geodesic
  interpolant ``exp_{x0}(gamma log_{x0} x1)``, target its tangent velocity.
- :class:`EuclideanFlowPath` (flow matching in R^3): Gaussian prior, ``gamma x1 + (1 - gamma) n``,
  target ``x1 - n``.
- :class:`DiffusionPath` (variance-preserving diffusion in R^3): ``sqrt(gamma) x1 + sqrt(1 - gamma) n``,
  target ``n`` (epsilon prediction); sampled with DDIM.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from . import geometry as geo

__all__ = ["PathSample", "Path", "SpherePath", "EuclideanFlowPath", "DiffusionPath", "make_path", "PathKind"]

PathKind = Literal["rfm", "fm", "diffusion"]


@dataclass(frozen=True)
class PathSample:
    """One training pair. Shapes: ``x0, x1, xt, target (N, 3)``, ``gamma (N,)``."""

    x0: Tensor
    x1: Tensor
    gamma: Tensor
    xt: Tensor
    target: Tensor


def _per_row(gamma: Tensor, x: Tensor) -> Tensor:
    """``gamma (N,)`` shaped to broadcast against ``x (N, ..., 3)``."""
    return gamma.reshape(gamma.shape + (1,) * (x.dim() - gamma.dim()))


class Path:
    """Interface shared by the three variants. Points ``x (N, ..., 3)`` with ``gamma (N,)``."""

    kind: PathKind
    #: "sphere": states stay on S^2 and velocities are tangent; "euclidean": states live in R^3.
    space: Literal["sphere", "euclidean"]

    def prior(self, shape: tuple[int, ...], *, generator: torch.Generator | None = None,
              device: torch.device | str | None = None, dtype: torch.dtype = torch.float32) -> Tensor:
        """Noise points ``shape + (3,)``."""
        raise NotImplementedError

    def interpolate(self, x0: Tensor, x1: Tensor, gamma: Tensor) -> PathSample:
        """Noisy point at signal level ``gamma`` and the target the network regresses onto."""
        raise NotImplementedError

    def loss(self, output: Tensor, sample: PathSample) -> Tensor:
        """Per-example squared error ``(N,)`` between the network output and the target."""
        return (self.prediction(output, sample.xt) - sample.target).pow(2).sum(dim=-1)

    def prediction(self, output: Tensor, x: Tensor) -> Tensor:
        """What of the raw output is compared to the target (the tangent part on the sphere)."""
        return output

    def velocity(self, output: Tensor, x: Tensor, gamma: Tensor) -> Tensor:
        """``dx/dgamma (N, 3)`` at ``x (N, 3)``, ``gamma (N,)`` given the raw network output."""
        raise NotImplementedError


class SpherePath(Path):
    kind: PathKind = "rfm"
    space = "sphere"

    def prior(self, shape, *, generator=None, device=None, dtype=torch.float32):
        return geo.uniform(shape, generator=generator, device=device, dtype=dtype)

    def interpolate(self, x0: Tensor, x1: Tensor, gamma: Tensor) -> PathSample:
        xt, dxt = geo.geodesic_velocity(x0, x1, gamma)
        return PathSample(x0, x1, gamma, xt, dxt)

    def prediction(self, output: Tensor, x: Tensor) -> Tensor:
        # Only the tangent part moves points on the sphere; the normal part is ignored by the
        # sampler, so it is not penalised either.
        return geo.proju(x, output)

    def velocity(self, output: Tensor, x: Tensor, gamma: Tensor) -> Tensor:
        return geo.proju(x, output)


class _GaussianPath(Path):
    """Paths in R^3 with a standard Gaussian prior."""

    space = "euclidean"

    def prior(self, shape, *, generator=None, device=None, dtype=torch.float32):
        return torch.randn(*shape, 3, generator=generator, device=device, dtype=dtype)


class EuclideanFlowPath(_GaussianPath):
    kind: PathKind = "fm"

    def interpolate(self, x0: Tensor, x1: Tensor, gamma: Tensor) -> PathSample:
        g = _per_row(gamma, x1)
        return PathSample(x0, x1, gamma, g * x1 + (1 - g) * x0, x1 - x0)

    def velocity(self, output: Tensor, x: Tensor, gamma: Tensor) -> Tensor:
        return output


class DiffusionPath(_GaussianPath):
    kind: PathKind = "diffusion"

    def interpolate(self, x0: Tensor, x1: Tensor, gamma: Tensor) -> PathSample:
        g = _per_row(gamma, x1)
        return PathSample(x0, x1, gamma, g.sqrt() * x1 + (1 - g).sqrt() * x0, x0)

    def denoise(self, output: Tensor, x: Tensor, gamma: Tensor) -> tuple[Tensor, Tensor]:
        """``(x1_hat, eps_hat)``: the clean point implied by the predicted noise, and that noise.

        The clean estimate is clipped to the unit ball (every data point is a unit vector) and the
        noise recomputed to stay consistent with ``x``. Without the clip, the first DDIM step at
        ``gamma = 1e-9`` divides the error of the predicted noise by ``sqrt(gamma) = 3e-5``, and the
        samples end up hundreds of units from the sphere.
        """
        g = _per_row(gamma, x)
        x1 = (x - (1 - g).sqrt() * output) / g.sqrt()
        x1 = x1 / x1.norm(dim=-1, keepdim=True).clamp_min(1.0)
        eps = (x - g.sqrt() * x1) / (1 - g).clamp_min(1e-12).sqrt()
        return x1, eps

    def velocity(self, output: Tensor, x: Tensor, gamma: Tensor) -> Tensor:
        # Probability-flow ODE in gamma: with x = sqrt(g) x1 + sqrt(1-g) eps and both held fixed,
        # dx/dg = x1 / (2 sqrt g) - eps / (2 sqrt(1-g)). Stiff near g = 0: use DDIM to sample.
        x1, eps = self.denoise(output, x, gamma)
        g = _per_row(gamma, x)
        return x1 / (2 * g.sqrt()) - eps / (2 * (1 - g).clamp_min(1e-12).sqrt())


def make_path(kind: PathKind) -> Path:
    """The path object for a model kind: ``rfm``, ``fm`` or ``diffusion``."""
    paths = {"rfm": SpherePath, "fm": EuclideanFlowPath, "diffusion": DiffusionPath}
    if kind not in paths:
        raise ValueError(f"unknown model kind {kind!r}; expected one of {', '.join(paths)}")
    return paths[kind]()
