"""Optimisation settings of the trainer, saved in every checkpoint (and the CLI's ``train`` options)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from ..checks import require_finite

__all__ = ["TrainConfig", "TrainingError"]


class TrainingError(RuntimeError):
    """Training cannot go on (diverged, or the run directory does not match the request)."""


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings; saved in every checkpoint. ``batch_size`` is the global batch."""

    steps: int = field(default=4000, metadata={"help": "training steps"})
    batch_size: int = field(default=512, metadata={"help": "global batch size (split across DDP processes)"})
    lr: float = field(default=1e-3, metadata={"help": "peak learning rate"})
    optimizer: Literal["adamw", "lamb"] = field(default="adamw", metadata={"help": "optimiser"})
    weight_decay: float = field(default=0.05, metadata={"help": "decoupled weight decay (on matrices only)"})
    warmup_steps: int = field(default=200, metadata={"help": "linear warm-up steps before the cosine decay"})
    min_lr_ratio: float = field(default=0.01, metadata={"help": "final learning rate as a fraction of the peak"})
    grad_clip: float = field(default=1.0, metadata={"help": "gradient-norm clipping threshold"})
    ema_decay: float = field(default=0.999, metadata={"help": "decay of the weights' exponential moving average"})
    seed: int = field(default=0, metadata={"help": "random seed (weights, data order, noise)"})
    log_every: int = field(default=50, metadata={"help": "steps between lines of metrics.jsonl"})
    val_every: int = field(default=500, metadata={"help": "steps between validation losses (with --val)"})
    ckpt_every: int = field(default=500, metadata={"help": "steps between checkpoints"})
    val_rows: int = field(default=8192, metadata={"help": "validation rows per evaluation"})
    #: Consecutive non-finite steps tolerated (each one skipped) before training stops.
    max_bad_steps: int = field(default=20, metadata={"help": "consecutive non-finite steps tolerated (each skipped) "
                                                             "before training stops"})
    skip_invalid: bool = field(default=False, metadata={"help": "skip and count invalid rows instead of failing"})

    def __post_init__(self) -> None:
        require_finite(self)
        positive = ("steps", "batch_size", "log_every", "val_every", "ckpt_every", "val_rows", "max_bad_steps")
        for name in positive:
            if getattr(self, name) < 1:
                raise ValueError(f"train {name} must be >= 1, got {getattr(self, name)}")
        for name in ("lr", "grad_clip"):
            if not getattr(self, name) > 0:
                raise ValueError(f"train {name} must be positive, got {getattr(self, name)}")
        if self.weight_decay < 0:
            raise ValueError(f"train weight_decay must be >= 0, got {self.weight_decay}")
        if self.warmup_steps < 0:
            raise ValueError(f"train warmup_steps must be >= 0, got {self.warmup_steps}")
        if not 0.0 <= self.min_lr_ratio <= 1.0:
            raise ValueError(f"train min_lr_ratio must be in [0, 1], got {self.min_lr_ratio}")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ValueError(f"ema_decay must be in [0, 1), got {self.ema_decay}")
