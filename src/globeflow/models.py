"""One model interface for the three generative variants: training loss, guided field, sampling.

Training, evaluation and serving call :class:`GeoFlowModel` and never branch on the variant; the
variant lives in the :class:`~globeflow.paths.Path` it holds and in :data:`DEFAULT_SAMPLER`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from . import geometry as geo
from . import solvers
from .network import GeoAdaLNMLP, NetworkConfig, network_config_from_dict
from .paths import DiffusionPath, PathKind, make_path
from .schedules import Schedule, ScheduleConfig

__all__ = ["ModelConfig", "GeoFlowModel", "SamplerConfig", "DEFAULT_SAMPLER", "PUBLISHED_SAMPLER", "model_config_from_dict", "build_model"]


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to rebuild a model; saved in every checkpoint."""

    network: NetworkConfig
    kind: PathKind = "rfm"
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    #: Probability of replacing the embedding by zeros in training (classifier-free guidance).
    cond_drop: float = 0.1
    #: Dropout on the embedding's coordinates in training (inverted, so inference needs no change): a
    #: regulariser against memorising training images. Off by default: on the Blue Marble task it
    #: improved the NLL on unseen regions but cost GeoScore on both protocols (docs/benchmarks.md).
    emb_dropout: float = 0.0

    def __post_init__(self) -> None:
        make_path(self.kind)  # validates the kind
        if not 0.0 <= self.cond_drop < 1.0:
            raise ValueError(f"cond_drop must be in [0, 1), got {self.cond_drop}")
        if not 0.0 <= self.emb_dropout < 1.0:
            raise ValueError(f"emb_dropout must be in [0, 1), got {self.emb_dropout}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ModelConfig":
        return cls(network=network_config_from_dict(d["network"]), kind=d["kind"],
                   schedule=ScheduleConfig(**d["schedule"]), cond_drop=d["cond_drop"],
                   emb_dropout=d.get("emb_dropout", 0.0))


@dataclass(frozen=True)
class SamplerConfig:
    """How to draw samples: solver, number of steps, guidance scale ``w``.

    ``method``: ``euler``, ``midpoint`` or ``rk4`` for ``rfm`` and ``fm``; ``ddim`` for ``diffusion``.
    ``step``: ``exp`` or ``retraction`` (sphere only), or ``published``: the published sampler's
    step, ``projx(x + h * output)`` with the raw, *unprojected* network output (rfm with ``euler``
    only; for reproducing published samples; its normal component changes the step length, which is
    why ``exp`` and ``retraction`` project onto the tangent plane first). Guided output is
    ``(1 + w) f_cond - w f_uncond``.
    """

    method: str = "rk4"
    steps: int = 16
    guidance: float = 0.0
    step: str = "exp"

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise ValueError(f"sampler steps must be >= 1, got {self.steps}")
        if self.step not in ("exp", "retraction", "published"):
            raise ValueError(f"sampler step must be 'exp', 'retraction' or 'published', got {self.step!r}")
        if self.step == "published" and self.method != "euler":
            raise ValueError(f"the published step is an Euler step; use method 'euler', not {self.method!r}")


#: Per-variant defaults, chosen on the known-answer benchmark (docs/benchmarks.md).
DEFAULT_SAMPLER: dict[str, SamplerConfig] = {
    "rfm": SamplerConfig(method="rk4", steps=16),
    "fm": SamplerConfig(method="rk4", steps=16),
    "diffusion": SamplerConfig(method="ddim", steps=64),
}


#: The published package's samplers (its pipeline's defaults): Euler with its step for rfm, Euler in
#: R^3 for fm, DDIM for diffusion, 250 steps each. Used to reproduce published numbers.
PUBLISHED_SAMPLER: dict[str, SamplerConfig] = {
    "rfm": SamplerConfig(method="euler", steps=250, step="published"),
    "fm": SamplerConfig(method="euler", steps=250),
    "diffusion": SamplerConfig(method="ddim", steps=250),
}


class GeoFlowModel(nn.Module):
    """Conditional generative model of locations ``p(x | embedding)`` on the sphere.

    Shapes: locations are unit vectors ``(N, 3)``; embeddings ``(N, cond_dim)``.
    """

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.network = GeoAdaLNMLP(config.network)
        self.path = make_path(config.kind)
        self.schedule = Schedule(config.schedule)

    @property
    def cond_dim(self) -> int:
        return self.config.network.cond_dim

    def loss(self, x1: Tensor, emb: Tensor, *, generator: torch.Generator | None = None) -> Tensor:
        """Mean training loss for clean locations ``x1 (N, 3)`` and embeddings ``emb (N, D)``.

        Draws ``t ~ U[0, 1]``, prior noise, and the classifier-free-guidance drop mask from
        ``generator`` (so that a seeded generator makes a step exactly reproducible).
        """
        n, dev, dtype = x1.shape[0], x1.device, x1.dtype
        t = torch.rand(n, generator=generator, device=dev, dtype=dtype)
        gamma = self.schedule(t)
        keep = torch.rand(n, generator=generator, device=dev, dtype=dtype) >= self.config.cond_drop
        emb = emb * keep.unsqueeze(-1).to(emb.dtype)
        if self.config.emb_dropout > 0:
            p = self.config.emb_dropout
            mask = torch.rand(emb.shape, generator=generator, device=dev, dtype=emb.dtype) >= p
            emb = emb * mask / (1.0 - p)
        x0 = self.path.prior((n,), generator=generator, device=dev, dtype=dtype)
        sample = self.path.interpolate(x0, x1, gamma)
        return self.path.loss(self.network(sample.xt, gamma, emb), sample).mean()

    def forward(self, x1: Tensor, emb: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """The training loss (so that DistributedDataParallel's forward hooks see it)."""
        return self.loss(x1, emb, generator=generator)

    def output(self, x: Tensor, gamma: Tensor, emb: Tensor, guidance: float = 0.0) -> Tensor:
        """Raw (guided) network output at ``x (N, 3)`` or ``(N, S, 3)``, ``gamma`` scalar or ``(N,)``."""
        gamma = gamma.expand(x.shape[0]) if gamma.dim() == 0 else gamma
        if guidance == 0.0:
            return self.network(x, gamma, emb)
        # One batched call for the conditional and unconditional halves.
        both = self.network(torch.cat((x, x)), torch.cat((gamma, gamma)), torch.cat((emb, torch.zeros_like(emb))))
        cond, uncond = both.chunk(2)
        return (1.0 + guidance) * cond - guidance * uncond

    def output_with_tangents(self, x: Tensor, gamma: Tensor, emb: Tensor, guidance: float,
                             dx: Tensor) -> tuple[Tensor, Tensor]:
        """:meth:`output` and its derivatives along ``dx (K, *x.shape)``: ``(out, dout (K, ...))``."""
        gamma = gamma.expand(x.shape[0]) if gamma.dim() == 0 else gamma
        if guidance == 0.0:
            return self.network.forward_with_tangents(x, gamma, emb, dx)
        out, dout = self.network.forward_with_tangents(torch.cat((x, x)), torch.cat((gamma, gamma)),
                                                       torch.cat((emb, torch.zeros_like(emb))), torch.cat((dx, dx), 1))
        (cond, uncond), (dcond, duncond) = out.chunk(2), dout.chunk(2, dim=1)
        return (1.0 + guidance) * cond - guidance * uncond, (1.0 + guidance) * dcond - guidance * duncond

    def velocity(self, x: Tensor, gamma: Tensor, emb: Tensor, guidance: float = 0.0) -> Tensor:
        """``dx/dgamma``, shaped like ``x``; tangent to the sphere for ``rfm``."""
        g = gamma.expand(x.shape[0]) if gamma.dim() == 0 else gamma
        return self.path.velocity(self.output(x, g, emb, guidance), x, g)

    def default_sampler(self) -> SamplerConfig:
        return DEFAULT_SAMPLER[self.config.kind]

    @torch.no_grad()
    def sample(self, emb: Tensor, num_samples: int, sampler: SamplerConfig | None = None, *,
               generator: torch.Generator | None = None, x_init: Tensor | None = None,
               chunk_size: int = 1 << 16, callback: solvers.Callback = None) -> Tensor:
        """Draw ``num_samples`` locations for each embedding, all images in one batched solve.

        Args:
            emb (Tensor): ``(B, D)`` embeddings.
            num_samples: samples per embedding ``S``.
            sampler: solver settings; the variant's default when omitted.
            x_init (Tensor): optional starting points ``(B, S, 3)`` (default: the prior).
            chunk_size: rows solved at once, bounding memory for large ``B * S``.
        Returns:
            Tensor: ``(B, S, 3)`` unit vectors.
        """
        sampler = sampler or self.default_sampler()
        self._check_sampler(sampler)
        if emb.dim() != 2 or emb.shape[1] != self.cond_dim:
            raise ValueError(f"embeddings must have shape (B, {self.cond_dim}), got {tuple(emb.shape)}")
        b = emb.shape[0]
        if x_init is None:
            x = self.path.prior((b, num_samples), generator=generator, device=emb.device, dtype=emb.dtype)
        else:
            x = x_init.reshape(b, num_samples, 3).to(emb.dtype)
        grid = self.schedule.sampling_grid(sampler.steps, device=emb.device, dtype=emb.dtype)
        # States stay (images, samples, 3): the network computes each image's conditioning once.
        per_chunk = max(1, chunk_size // num_samples)
        parts = [self._solve(x[i:i + per_chunk], emb[i:i + per_chunk], grid, sampler, callback)
                 for i in range(0, b, per_chunk)]
        return geo.projx(torch.cat(parts)) if parts else x

    def _solve(self, x: Tensor, emb: Tensor, grid: Tensor, sampler: SamplerConfig, callback) -> Tensor:
        w = sampler.guidance
        if sampler.method == "ddim":
            path = self.path
            assert isinstance(path, DiffusionPath)
            return solvers.ddim(lambda y, g: path.denoise(self.output(y, g, emb, w), y, g.expand(emb.shape[0])),
                                x, grid, callback=callback)
        if sampler.step == "published":
            return solvers.solve(lambda y, g: self.output(y, g.expand(y.shape[0]), emb, w), x, grid, method="euler",
                                 space="sphere", step="retraction", callback=callback)
        return solvers.solve(lambda y, g: self.velocity(y, g, emb, w), x, grid, method=sampler.method,
                             space=self.path.space, step=sampler.step, callback=callback)

    def _check_sampler(self, sampler: SamplerConfig) -> None:
        if sampler.step == "published" and self.config.kind != "rfm":
            raise ValueError(f"the published step is the sphere sampler's; a {self.config.kind} model cannot use it")
        allowed = ("ddim",) if self.config.kind == "diffusion" else solvers.METHODS
        if sampler.method not in allowed:
            raise ValueError(f"sampler method {sampler.method!r} is not available for a {self.config.kind} "
                             f"model; use one of {', '.join(allowed)}")


def model_config_from_dict(d: dict[str, Any]):
    """A checkpoint's ``model_config`` -> :class:`ModelConfig` (flow models) or
    :class:`~globeflow.baselines.direct.DirectConfig` (trained baselines), by its ``kind``."""
    from .baselines.direct import HEAD_KINDS, DirectConfig

    return DirectConfig.from_dict(d) if d.get("kind") in HEAD_KINDS else ModelConfig.from_dict(d)


def build_model(config) -> nn.Module:
    """The trainable module for a config: :class:`GeoFlowModel` or a trained baseline's model."""
    from .baselines.direct import DirectConfig, DirectModel

    return DirectModel(config) if isinstance(config, DirectConfig) else GeoFlowModel(config)
