"""Trained baselines: one forward pass from the embedding to a distribution (or a point).

They share everything with the flow models except the output: the same AdaLN residual blocks at the
same width and depth (:class:`DirectNetwork`, conditioned on the embedding alone since there is no
noisy point or time), the same trainer (``globeflow train --model vmf``), checkpoints, EMA, and the
same ``globeflow evaluate`` harness, so a comparison measures the output model and nothing else.

Kinds (:data:`HEAD_KINDS`): ``vmf`` (von Mises-Fisher regression), ``vmf-mixture`` (``components``
vMFs, 3 by default), ``geocell`` (HEALPix classification with haversine-smoothed labels) and
``regression`` (a unit vector, no density). See :mod:`globeflow.baselines.heads`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Callable, Literal

import torch
from torch import Tensor, nn

from ..checks import require_finite
from ..flow.network import AdaLNBlock, NetworkConfig, network_config_from_dict
from ..geo import healpix as grid
from .heads import GeocellHead, Head, RegressionHead, VMFMixtureHead

__all__ = ["HEADS", "HEAD_KINDS", "HeadKind", "DirectConfig", "DirectNetwork", "DirectModel"]

HeadKind = Literal["vmf", "vmf-mixture", "geocell", "regression"]


@dataclass(frozen=True)
class HeadSpec:
    """One baseline kind: what it is, and its head built from a config."""

    summary: str
    make: Callable[["DirectConfig"], Head]


#: The baseline kinds (the trained baselines' table; see :mod:`globeflow.registry` for every kind).
HEADS: dict[str, HeadSpec] = {
    "vmf": HeadSpec("von Mises-Fisher regression (closed-form density)", lambda c: VMFMixtureHead(1)),
    "vmf-mixture": HeadSpec("a mixture of --components von Mises-Fisher distributions",
                            lambda c: VMFMixtureHead(c.components)),
    "geocell": HeadSpec("HEALPix geocell classification with haversine-smoothed labels",
                        lambda c: GeocellHead(c.nside, c.tau_km)),
    "regression": HeadSpec("direct regression of a unit vector (a point, no density)", lambda c: RegressionHead()),
}
HEAD_KINDS: tuple[str, ...] = tuple(HEADS)


@dataclass(frozen=True)
class DirectConfig:
    """Everything needed to rebuild a trained baseline; saved in every checkpoint.

    ``components`` is used by ``vmf-mixture``; ``nside`` and ``label_tau_km`` by ``geocell`` (the
    smoothing length defaults to half the cell size, so a label spreads onto neighbouring cells
    without blurring the grid's own resolution away).
    """

    network: NetworkConfig
    kind: HeadKind = field(default="vmf-mixture", metadata={"cli": False})
    components: int = field(default=3, metadata={"help": "vmf-mixture components"})
    nside: int = field(default=16, metadata={"help": "geocell HEALPix nside: 12 nside^2 cells (16: 3,072 cells of "
                                                     "~400 km)"})
    label_tau_km: float | None = field(default=None, metadata={"help": "geocell label smoothing length in km "
                                                                       "(default: half the cell size)"})

    def __post_init__(self) -> None:
        require_finite(self)
        if self.kind not in HEAD_KINDS:
            raise ValueError(f"unknown baseline kind {self.kind!r}; expected one of {', '.join(HEAD_KINDS)}")
        if self.components < 1:
            raise ValueError(f"components must be >= 1, got {self.components}")
        grid.check_nside(self.nside)
        if self.label_tau_km is not None and self.label_tau_km <= 0:
            raise ValueError(f"label_tau_km must be positive, got {self.label_tau_km}")

    @property
    def tau_km(self) -> float:
        return self.label_tau_km if self.label_tau_km is not None else 0.5 * grid.resolution_km(self.nside)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "DirectConfig":
        return cls(network=network_config_from_dict(d["network"]), kind=d["kind"], components=d["components"],
                   nside=d["nside"], label_tau_km=d["label_tau_km"])

    def make_head(self) -> Head:
        return HEADS[self.kind].make(self)


class DirectNetwork(nn.Module):
    """The flow network's backbone without its inputs ``(x, gamma)``: ``emb (N, cond_dim) -> (N, out_dim)``.

    The residual stream starts from a linear map of the embedding, and every block is modulated by
    another (as the flow network's blocks are by the mapped embedding plus the time embedding).
    """

    def __init__(self, config: NetworkConfig, out_dim: int):
        super().__init__()
        dim = config.dim
        self.cond_mapper = nn.Linear(config.cond_dim, dim)
        self.initial_mapper = nn.Linear(config.cond_dim, dim)
        self.blocks = nn.ModuleList(AdaLNBlock(dim, config.expansion) for _ in range(config.depth))
        self.final_adaln = nn.Sequential(nn.SiLU(), nn.Linear(dim, dim * 2))
        self.final_ln = nn.LayerNorm(dim, elementwise_affine=False)
        self.final_linear = nn.Linear(dim, out_dim)

    def forward(self, emb: Tensor) -> Tensor:
        c = self.cond_mapper(emb)
        h = self.initial_mapper(emb)
        for block in self.blocks:
            h = block(h, c)
        scale, shift = self.final_adaln(c).chunk(2, dim=-1)
        return self.final_linear((1 + scale) * self.final_ln(h) + shift)


class DirectModel(nn.Module):
    """A trained baseline with the training interface of :class:`~globeflow.flow.model.GeoFlowModel`
    (``loss(x1, emb, generator=...)``, ``network`` holding every weight)."""

    def __init__(self, config: DirectConfig):
        super().__init__()
        self.config = config
        self.head = config.make_head()
        self.network = DirectNetwork(config.network, self.head.out_dim)

    @property
    def cond_dim(self) -> int:
        return self.config.network.cond_dim

    def loss(self, x1: Tensor, emb: Tensor, *, generator: torch.Generator | None = None) -> Tensor:
        """Mean loss for locations ``x1 (N, 3)`` and embeddings ``emb (N, D)`` (no randomness: the
        generator is accepted for the trainer's sake)."""
        return self.head.loss(self.network(emb), x1).mean()

    def forward(self, x1: Tensor, emb: Tensor, generator: torch.Generator | None = None) -> Tensor:
        return self.loss(x1, emb, generator=generator)

    @property
    def has_density(self) -> bool:
        return self.head.has_density
