"""How an answer is computed: :class:`AnswerConfig` (samples, solver steps, guidance, places, map)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from ..density import CREDIBLE_LEVELS, MapConfig

__all__ = ["AnswerConfig", "override"]


@dataclass(frozen=True)
class AnswerConfig:
    """Settings of an answer (all densities unguided by default: they are the calibrated ones)."""

    num_samples: int = field(default=256, metadata={"help": "samples with exact densities per image"})
    steps: int = field(default=16, metadata={"help": "RK4 steps of the likelihood ODE"})
    guidance: float = field(default=0.0, metadata={"help": "guidance scale (0: the calibrated density)"})
    top_k: int = field(default=5, metadata={"help": "distinct places reported"})
    min_separation_km: float = field(default=250.0, metadata={"help": "places closer than this are one place"})
    top_areas: int = field(default=10, metadata={"help": "countries, regions and cities reported"})
    levels: tuple[float, ...] = field(default=CREDIBLE_LEVELS, metadata={"cli": False})
    map: MapConfig = field(default_factory=MapConfig)

    def __post_init__(self) -> None:
        if self.num_samples < 2:
            raise ValueError(f"num_samples must be >= 2 (the entropy needs a spread), got {self.num_samples}")
        for name in ("steps", "top_k", "top_areas"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not all(0.0 < p <= 1.0 for p in self.levels):
            raise ValueError(f"credible levels must be in (0, 1], got {self.levels}")


def override(config: AnswerConfig, *, top_k: int | None = None, guidance: float | None = None,
             num_samples: int | None = None, steps: int | None = None, nside: int | None = None) -> AnswerConfig:
    """``config`` with the given fields replaced (``None`` keeps the config's; ``nside`` is the map's)."""
    changes: dict[str, Any] = {k: v for k, v in dict(top_k=top_k, guidance=guidance, num_samples=num_samples,
                                                    steps=steps).items() if v is not None}
    if nside is not None:
        changes["map"] = replace(config.map, nside=nside)
    return replace(config, **changes) if changes else config
