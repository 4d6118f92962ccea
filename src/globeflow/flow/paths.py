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

A path also says how it is sampled (:meth:`Path.integrate`, its solvers, its default and published
samplers) and whether its density on the sphere is exact and normalised (only the sphere path's is).
:data:`PATHS` is the table of the flow kinds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Literal

import torch
from torch import Tensor

from .. import geo
from ..geo.manifold import EUCLIDEAN, SPHERE, Manifold
from . import solvers
from .sampling import SamplerConfig

__all__ = ["PathSample", "Path", "SpherePath", "EuclideanFlowPath", "DiffusionPath", "PATHS", "make_path", "PathKind",
           "Output"]

PathKind = Literal["rfm", "fm", "diffusion"]
#: The raw (guided) network output as a function of the state: ``(x (B, S, 3), gamma scalar) -> (B, S, 3)``.
Output = Callable[[Tensor, Tensor], Tensor]


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
    #: What the model is, in a few words (the CLI's help).
    summary: str
    #: The sphere: states stay on S^2 and velocities are tangent; R^3: states live in R^3.
    space: Manifold
    #: Whether the model's density on the sphere is exact and normalised (the probability-flow ODE
    #: of a tangent field); a density in R^3 restricted to the sphere is not.
    exact_density: bool = False
    #: Sampler methods this path can be integrated with.
    methods: tuple[str, ...] = tuple(solvers.METHODS)
    #: Whether the published package's sampler step (raw output, then projection) applies.
    published_step: bool = False
    #: globeflow's sampler (chosen on the known-answer benchmark, docs/benchmarks.md).
    default_sampler: SamplerConfig = SamplerConfig(method="rk4", steps=16)
    #: The published package's sampler (its pipeline's defaults), to reproduce published numbers.
    published_sampler: SamplerConfig = SamplerConfig(method="euler", steps=250)

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

    def check_sampler(self, sampler: SamplerConfig) -> None:
        """Raise ``ValueError`` unless this path can be sampled with ``sampler``."""
        if sampler.step == "published" and not self.published_step:
            raise ValueError(f"the published step is the published rfm (Euler) and diffusion (DDIM) samplers'; a "
                             f"{self.kind} model cannot use it")
        if sampler.method not in self.methods:
            raise ValueError(f"sampler method {sampler.method!r} is not available for a {self.kind} "
                             f"model; use one of {', '.join(self.methods)}")

    def integrate(self, output: Output, x: Tensor, grid: Tensor, sampler: SamplerConfig,
                  callback: solvers.Callback = None) -> Tensor:
        """Carry states ``x (B, S, 3)`` along ``grid`` (noise -> data) with ``sampler``, the network's
        (guided) raw ``output`` giving the velocity."""
        def velocity(y: Tensor, g: Tensor) -> Tensor:
            g = g.expand(y.shape[0])
            return self.velocity(output(y, g), y, g)

        return solvers.solve(velocity, x, grid, method=sampler.method, space=self.stepping_space(sampler),
                             step=sampler.step, callback=callback)

    def stepping_space(self, sampler: SamplerConfig) -> Manifold:
        """Where a sampler's steps land: the path's own space."""
        return self.space


class SpherePath(Path):
    kind: PathKind = "rfm"
    summary = "Riemannian flow matching on the sphere S^2 (exact, normalised density)"
    space = SPHERE
    exact_density = True
    published_step = True
    published_sampler = SamplerConfig(method="euler", steps=250, step="published")

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

    def integrate(self, output: Output, x: Tensor, grid: Tensor, sampler: SamplerConfig,
                  callback: solvers.Callback = None) -> Tensor:
        if sampler.step == "published":
            # The published Euler step moves along the raw output, normal component included.
            return solvers.solve(lambda y, g: output(y, g.expand(y.shape[0])), x, grid, method="euler",
                                 space=self.space, step="retraction", callback=callback)
        return super().integrate(output, x, grid, sampler, callback)


class _GaussianPath(Path):
    """Paths in R^3 with a standard Gaussian prior."""

    space = EUCLIDEAN

    def prior(self, shape, *, generator=None, device=None, dtype=torch.float32):
        return torch.randn(*shape, 3, generator=generator, device=device, dtype=dtype)

    def stepping_space(self, sampler: SamplerConfig) -> Manifold:
        # step="retraction" projects every step (and stage point) onto the sphere: the projection
        # ablation of docs/experiments.md. The network was trained on states off the sphere, so this
        # is a question, not a default; "exp" moves in R^3 and projects once, at the end.
        return SPHERE if sampler.step == "retraction" else self.space


class EuclideanFlowPath(_GaussianPath):
    kind: PathKind = "fm"
    summary = "flow matching in R^3, projected to the sphere"

    def interpolate(self, x0: Tensor, x1: Tensor, gamma: Tensor) -> PathSample:
        g = _per_row(gamma, x1)
        return PathSample(x0, x1, gamma, g * x1 + (1 - g) * x0, x1 - x0)

    def velocity(self, output: Tensor, x: Tensor, gamma: Tensor) -> Tensor:
        return output


class DiffusionPath(_GaussianPath):
    kind: PathKind = "diffusion"
    summary = "diffusion in R^3 (DDIM sampling), projected to the sphere"
    methods = ("ddim",)
    default_sampler = SamplerConfig(method="ddim", steps=64)
    published_sampler = SamplerConfig(method="ddim", steps=250, step="published")
    published_step = True

    def interpolate(self, x0: Tensor, x1: Tensor, gamma: Tensor) -> PathSample:
        g = _per_row(gamma, x1)
        return PathSample(x0, x1, gamma, g.sqrt() * x1 + (1 - g).sqrt() * x0, x0)

    def denoise(self, output: Tensor, x: Tensor, gamma: Tensor, clip: str = "ball") -> tuple[Tensor, Tensor]:
        """``(x1_hat, eps_hat)``: the clean point implied by the predicted noise, and that noise.

        The clean estimate is clipped (``clip="ball"``: its norm to 1, as every data point is a unit
        vector; ``"box"``: each coordinate to [-1, 1], the published sampler's clamp) and the noise
        recomputed to stay consistent with ``x``. Without a clip, the first DDIM step at ``gamma =
        1e-9`` divides the error of the predicted noise by ``sqrt(gamma) = 3e-5``, and the samples end
        up hundreds of units from the sphere.
        """
        g = _per_row(gamma, x)
        x1 = (x - (1 - g).sqrt() * output) / g.sqrt()
        if clip == "box":
            x1 = x1.clamp(-1.0, 1.0)
        else:
            x1 = x1 / x1.norm(dim=-1, keepdim=True).clamp_min(1.0)
        eps = (x - g.sqrt() * x1) / (1 - g).clamp_min(1e-12).sqrt()
        return x1, eps

    def velocity(self, output: Tensor, x: Tensor, gamma: Tensor) -> Tensor:
        # Probability-flow ODE in gamma: with x = sqrt(g) x1 + sqrt(1-g) eps and both held fixed,
        # dx/dg = x1 / (2 sqrt g) - eps / (2 sqrt(1-g)). Stiff near g = 0: use DDIM to sample.
        x1, eps = self.denoise(output, x, gamma)
        g = _per_row(gamma, x)
        return x1 / (2 * g.sqrt()) - eps / (2 * (1 - g).clamp_min(1e-12).sqrt())

    def integrate(self, output: Output, x: Tensor, grid: Tensor, sampler: SamplerConfig,
                  callback: solvers.Callback = None) -> Tensor:
        # Stiff near gamma = 0 as an ODE: DDIM steps between the clean and noise estimates instead.
        clip = "box" if sampler.step == "published" else "ball"
        return solvers.ddim(lambda y, g: self.denoise(output(y, g), y, g.expand(y.shape[0]), clip), x, grid,
                            callback=callback, space=self.stepping_space(sampler))


#: The flow kinds: each model kind's probability path.
PATHS: dict[str, type[Path]] = {p.kind: p for p in (SpherePath, EuclideanFlowPath, DiffusionPath)}


def make_path(kind: PathKind) -> Path:
    """The path object for a model kind: ``rfm``, ``fm`` or ``diffusion``."""
    if kind not in PATHS:
        raise ValueError(f"unknown model kind {kind!r}; expected one of {', '.join(PATHS)}")
    return PATHS[kind]()
