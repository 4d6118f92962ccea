"""The settings of a point prediction and of a log-density, as frozen configs: what ``globeflow
predict``, ``evaluate`` and ``log-prob`` take (their options are generated from these fields) and what
:meth:`Locator.predict` and :meth:`Locator.log_prob` receive; and the presets of photo answers and
best guesses."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from ..flow.sampling import PROTOCOLS
from .answers import AnswerConfig
from .density import MapConfig
from .locator import POINT_STRATEGIES

__all__ = ["PointConfig", "LogProbConfig", "PHOTO_ANSWERS", "BEST_GUESS_SAMPLES", "BEST_GUESS_STEPS"]

#: The best guess of an rfm model: the best expected GeoScore among 128 samples of RK4 with 8 steps.
#: On the known-answer task (dim 256) it scores as 256 samples of RK4-16 (2814 vs 2789 on 150 rows,
#: within noise) at a quarter of the network evaluations (docs/benchmarks.md, "Honest answers").
BEST_GUESS_SAMPLES, BEST_GUESS_STEPS = 128, 8

#: Answers for photos: 128 samples with exact densities and a nside-16 map (~370 km cells, ~700 exact
#: solves), dopri5 at 1e-4 (interactive; each answer measures and reports its error, and warns above
#: 0.05 nats; ``globeflow map`` uses 1e-5). Exact solves dominate the cost, so a finer map costs ~4x
#: per level: ``nside=32`` for more detail, ``globeflow map`` for the full nside-64 maps.
PHOTO_ANSWERS = AnswerConfig(num_samples=128, top_k=3, rtol=1e-4, atol=1e-4,
                             map=MapConfig(nside=16, start_nside=4, max_cells=64, exact_top=100))



@dataclass(frozen=True)
class PointConfig:
    """How one point per image is chosen; ``None`` keeps the model's default."""

    strategy: str | None = field(default=None, metadata={
        "flag": "--point", "choices": POINT_STRATEGIES,
        "help": "point estimate: best expected GeoScore among samples (default), densest sample (mode), densest "
                "cell of the density map (grid), or one guided sample (single; the default with --protocol "
                "published)"})
    protocol: str = field(default="globeflow", metadata={
        "choices": PROTOCOLS,
        "help": "sampler preset: globeflow's defaults (e.g. 16 RK4 steps on the sphere), or the published "
                "package's (Euler or DDIM, 250 steps); published + --point single + guidance 2 is the published "
                "evaluation protocol"})
    num_samples: int | None = field(default=None, metadata={
        "help": "samples per image for --point geoscore / mode (default 128)"})
    steps: int | None = field(default=None, metadata={
        "help": "solver steps (default: the model's, e.g. 16 RK4 steps for rfm; 8 for an rfm model's "
                "--point geoscore)"})
    method: str | None = field(default=None, metadata={
        "help": "solver: euler, midpoint, rk4 (rfm, fm) or ddim (diffusion)"})
    guidance: float | None = field(default=None, metadata={
        "help": "classifier-free guidance scale (default 0 for geoscore, 2 for single)"})

    def predict_kwargs(self, seed: int | None) -> dict[str, Any]:
        """The keywords of :meth:`Locator.predict` (and what a report records as ``predict``)."""
        point = self.strategy or ("single" if self.protocol == "published" else "geoscore")
        kwargs: dict[str, Any] = dict(strategy=point, num_samples=128 if self.num_samples is None else self.num_samples,
                                      steps=self.steps, guidance=self.guidance, method=self.method, seed=seed)
        if self.protocol != "globeflow":  # trained baselines accept only the default
            kwargs["protocol"] = self.protocol
        return kwargs


@dataclass(frozen=True)
class LogProbConfig:
    """How an exact log-density is computed (rfm models; closed form for density baselines)."""

    steps: int = field(default=16, metadata={"help": "RK4 steps"})
    method: Literal["rk4", "bosh3", "dopri5"] = field(default="rk4", metadata={
        "help": "likelihood solver: rk4 (fixed steps) or an adaptive pair (bosh3, dopri5; tolerance 1e-5)"})
    guidance: float = field(default=0.0, metadata={"help": "guidance scale (0: the calibrated density)"})
    divergence: Literal["exact", "hutchinson"] = field(default="exact", metadata={
        "help": "divergence of the field: exact, or Hutchinson's estimator"})
    units: Literal["sr", "km2"] = field(default="sr", metadata={"help": "nats per steradian or per km^2"})

    def log_prob_kwargs(self) -> dict[str, Any]:
        return dict(units=self.units, steps=self.steps, method=self.method, guidance=self.guidance,
                    divergence=self.divergence)
