"""Noise schedules: the signal level ``gamma(t)`` and its derivative, as pure functions of ``t``.

Convention (as in the reference method): ``t`` runs over [0, 1]; ``gamma(0) = 1`` is clean data and
``gamma(1) ~ 0`` is pure noise. Training draws ``t ~ U[0, 1]``; samplers walk ``t`` from 1 to 0 and
integrate in ``gamma``. Every schedule is clamped to ``[GAMMA_MIN, 1]`` so that ``log gamma`` and the
diffusion coefficients stay finite; the derivative is that of the unclamped curve.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from ..checks import require_finite

__all__ = ["GAMMA_MIN", "ScheduleConfig", "Schedule", "make_schedule"]

GAMMA_MIN = 1e-9

ScheduleName = Literal["sigmoid", "linear", "cosine"]


@dataclass(frozen=True)
class ScheduleConfig:
    """Which schedule, and the sigmoid's shape (the published models use start -7, end 3, tau 1)."""

    name: ScheduleName = "sigmoid"
    start: float = -7.0
    end: float = 3.0
    tau: float = 1.0

    def __post_init__(self) -> None:
        require_finite(self)


class Schedule:
    """``gamma(t)`` and ``d gamma / d t`` for one :class:`ScheduleConfig`; stateless and picklable."""

    def __init__(self, config: ScheduleConfig = ScheduleConfig()):
        if config.name not in ("sigmoid", "linear", "cosine"):
            raise ValueError(f"unknown schedule {config.name!r}; expected sigmoid, linear or cosine")
        if config.name == "sigmoid" and not config.end > config.start:
            raise ValueError(f"sigmoid schedule needs end > start, got start={config.start}, end={config.end}")
        if config.tau <= 0:
            raise ValueError(f"schedule tau must be positive, got {config.tau}")
        self.config = config

    def __call__(self, t: Tensor) -> Tensor:
        """``gamma(t)``, same shape as ``t``, in ``[GAMMA_MIN, 1]``."""
        return self._gamma(t).clamp(GAMMA_MIN, 1.0)

    def derivative(self, t: Tensor) -> Tensor:
        """``d gamma / d t`` (negative: the signal decreases with ``t``)."""
        c = self.config
        if c.name == "linear":
            return -torch.ones_like(t)
        if c.name == "cosine":
            return -math.pi / 2 * torch.sin(math.pi / 2 * t)
        s, e, tau = c.start, c.end, c.tau
        z = torch.sigmoid((t * (e - s) + s) / tau)
        return -(e - s) / tau * z * (1 - z) / (_sig(e / tau) - _sig(s / tau))

    def _gamma(self, t: Tensor) -> Tensor:
        c = self.config
        if c.name == "linear":
            return 1.0 - t
        if c.name == "cosine":
            return torch.cos(math.pi / 2 * t)
        s, e, tau = c.start, c.end, c.tau
        return (_sig(e / tau) - torch.sigmoid((t * (e - s) + s) / tau)) / (_sig(e / tau) - _sig(s / tau))

    def sampling_grid(self, steps: int, device: torch.device | str | None = None,
                      dtype: torch.dtype = torch.float32) -> Tensor:
        """``steps + 1`` signal levels from noise to data: ``gamma(t_i)`` for ``t_i = linspace(1, 0)``.

        Uniform in ``t`` as the published samplers are, so the steps are fine where the schedule
        moves fast. The last level is exactly 1 (clean data).
        """
        if steps < 1:
            raise ValueError(f"steps must be >= 1, got {steps}")
        t = torch.linspace(1.0, 0.0, steps + 1, device=device, dtype=torch.float64)
        return self(t).to(dtype)


def _sig(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-z))


def make_schedule(name: ScheduleName = "sigmoid", **kwargs: float) -> Schedule:
    """Shorthand: ``make_schedule("cosine")``."""
    return Schedule(ScheduleConfig(name=name, **kwargs))
