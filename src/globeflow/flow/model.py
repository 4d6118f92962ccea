"""One model interface for the three generative variants: training loss, guided field, sampling.

Training, evaluation and serving call :class:`GeoFlowModel` and never branch on the variant; the
variant lives in the :class:`~globeflow.flow.paths.Path` it holds (its space, sampler and density).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from torch import Tensor, nn

from ..checks import require_finite
from .. import geo
from . import solvers
from .network import GeoAdaLNMLP, NetworkConfig, network_config_from_dict
from .paths import PATHS, PathKind, make_path
from .sampling import SamplerConfig
from .schedules import Schedule, ScheduleConfig

__all__ = ["ModelConfig", "GeoFlowModel", "chunked"]


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to rebuild a model; saved in every checkpoint."""

    network: NetworkConfig
    kind: PathKind = field(default="rfm", metadata={"choices": tuple(PATHS), "cli": False})
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig, metadata={"cli": False})
    #: Probability of replacing the embedding by zeros in training (classifier-free guidance).
    cond_drop: float = field(default=0.1, metadata={"help": "guidance dropout: probability of training on the zero "
                                                            "embedding (classifier-free guidance)"})
    #: Dropout on the embedding's coordinates in training (inverted, so inference needs no change): a
    #: regulariser against memorising training images. Off by default: on the Blue Marble task it
    #: improved the NLL on unseen regions but cost GeoScore on both protocols (docs/benchmarks.md).
    emb_dropout: float = field(default=0.0, metadata={"help": "dropout on embedding coordinates in training "
                                                              "(docs/design.md)"})

    def __post_init__(self) -> None:
        require_finite(self)
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
        return self.path.default_sampler

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
        self.path.check_sampler(sampler)
        if emb.dim() != 2 or emb.shape[1] != self.cond_dim:
            raise ValueError(f"embeddings must have shape (B, {self.cond_dim}), got {tuple(emb.shape)}")
        b = emb.shape[0]
        if x_init is None:
            x = self.path.prior((b, num_samples), generator=generator, device=emb.device, dtype=emb.dtype)
        else:
            x = x_init.reshape(b, num_samples, 3).to(emb.dtype)
        grid = self.schedule.sampling_grid(sampler.steps, device=emb.device, dtype=emb.dtype)
        guidance = sampler.guidance

        # States stay (images, samples, 3): the network computes each image's conditioning once.
        def solve(i: int, n: int) -> Tensor:
            e = emb[i:i + n]
            return self.path.integrate(lambda y, g: self.output(y, g, e, guidance), x[i:i + n], grid, sampler,
                                       callback)

        return geo.projx(torch.cat(chunked(solve, b, max(1, chunk_size // num_samples)))) if b else x


def chunked(fn: Callable[[int, int], Any], total: int, size: int) -> list:
    """``[fn(start, count)]`` over consecutive chunks of at most ``size`` of ``range(total)``: how
    every batched solve bounds its memory (images per network call)."""
    return [fn(i, min(size, total - i)) for i in range(0, total, size)]
