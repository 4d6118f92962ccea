"""What the experiments report measures, and at what size: one frozen dataclass, three presets.

``FULL`` uses the demos' own sizes (the known-answer demo's network and training, the Blue Marble
demo's), so the report's models are the ones the README's tables describe; ``QUICK`` is small enough
for 15 minutes on 2 CPU cores; ``TINY`` is the test suite's.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from ...inference.density import MapConfig
from ...train import TrainConfig
from ..demos.blue_marble import BlueMarbleDemoConfig
from ..tasks.blue_marble import BlueMarbleConfig

__all__ = ["KnownAnswerSizes", "ExperimentsConfig", "FULL", "QUICK", "TINY", "PRESETS", "EXPERIMENTS"]

#: The five questions, in the report's order.
EXPERIMENTS = ("geometry", "guidance", "projection", "mixtures", "steps")


@dataclass(frozen=True)
class KnownAnswerSizes:
    """Data and model sizes on the known-answer task (the demo's by default)."""

    train_rows: int = 200_000
    test_rows: int = 1000
    network: tuple[tuple[str, int], ...] = (("dim", 128), ("depth", 6))
    train: TrainConfig = TrainConfig(steps=4000, batch_size=512, val_every=1000, ckpt_every=500)


@dataclass(frozen=True)
class ExperimentsConfig:
    """Every size and setting behind the report. Attributes:

    known_answer, blue_marble: the two tasks (``blue_marble=None`` leaves the real-image task out).
    blue_marble_rows: test patches per protocol that are measured (the first ones; ``None``: all).
    point_samples: samples per row behind a best guess (the highest expected GeoScore among them).
    calibration_samples: samples with exact densities per row behind the credible-region coverage.
    guidance, components, steps: the settings swept by questions 2, 4 and 5.
    density_samples: samples per known-answer class for the density gap (questions 1 and 5).
    projection_samples: samples per row in question 3.
    mass_rows, mass_samples, mass_points: test rows whose guided density is integrated at every
        guidance scale (the normalisation check of question 2), by importance sampling from a proposal
        built on ``mass_samples`` samples, with ``mass_points`` points;
    mass_map: also on this coarse-to-fine equal-area map (``None``: not), which only resolves a
        density no narrower than its cells.
    seed: every sample's seed; a rerun with the same seed gives the same numbers (not the same times).
    """

    name: str = "full"
    known_answer: KnownAnswerSizes = KnownAnswerSizes()
    blue_marble: BlueMarbleDemoConfig | None = BlueMarbleDemoConfig()
    blue_marble_rows: int | None = 500
    point_samples: int = 32
    calibration_samples: int = 16
    guidance: tuple[float, ...] = (0.0, 0.5, 1.0, 2.0, 4.0, 8.0)
    components: tuple[int, ...] = (1, 2, 3, 5, 8, 16)
    steps: tuple[int, ...] = (4, 8, 16, 32, 64, 250)
    density_samples: int = 1000
    projection_samples: int = 32
    mass_rows: int = 1
    mass_samples: int = 100
    mass_points: int = 500
    mass_map: MapConfig | None = None
    seed: int = 0

    def stamp(self) -> str:
        """A digest of every setting: the work folder belongs to one configuration."""
        text = json.dumps(dataclasses.asdict(self), sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(dataclasses.asdict(self), default=str))


FULL = ExperimentsConfig()

QUICK = ExperimentsConfig(
    name="quick", blue_marble_rows=None,
    known_answer=KnownAnswerSizes(train_rows=50_000, test_rows=400, network=(("dim", 64), ("depth", 4)),
                                  train=TrainConfig(steps=1500, batch_size=256, warmup_steps=100, val_every=500,
                                                    ckpt_every=500)),
    blue_marble=BlueMarbleDemoConfig(
        task=BlueMarbleConfig(train_rows=4000, test_rows=300), network=(("dim", 128), ("depth", 4)),
        train=TrainConfig(steps=600, batch_size=256, warmup_steps=100, val_every=300, ckpt_every=300), maps=0),
    point_samples=16, calibration_samples=8, density_samples=250, projection_samples=16, mass_samples=64,
    mass_points=400)

TINY = ExperimentsConfig(
    name="tiny", blue_marble_rows=16,
    known_answer=KnownAnswerSizes(train_rows=4000, test_rows=40, network=(("dim", 16), ("depth", 1)),
                                  train=TrainConfig(steps=30, batch_size=128, warmup_steps=5, val_every=30,
                                                    ckpt_every=30)),
    blue_marble=BlueMarbleDemoConfig(
        task=BlueMarbleConfig(train_rows=300, test_rows=24, pixels=32), encoder="efficientnet-lite0@32",
        network=(("dim", 16), ("depth", 1)),
        train=TrainConfig(steps=20, batch_size=64, warmup_steps=5, val_every=20, ckpt_every=20), maps=0,
        batch_size=128),
    point_samples=4, calibration_samples=4, components=(1, 2), steps=(4, 8), density_samples=16,
    projection_samples=4, mass_samples=64, mass_points=1000,
    mass_map=MapConfig(nside=16, start_nside=16, exact_top=16))

PRESETS = {c.name: c for c in (FULL, QUICK, TINY)}
