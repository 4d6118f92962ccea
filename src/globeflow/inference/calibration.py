"""Recalibrated credible regions: a conformal correction of the highest-density level, stored with a run.

A model's p-credible region ``R_p`` (its highest-density region of mass p) holds the truth when the
truth's HPD rank ``u`` (the model mass denser than the truth, :mod:`globeflow.evaluation.calibration`)
is below p. On data unlike the training data a model is over-confident: ``u`` piles up near 1 and
``R_p`` holds the truth far less often than p (docs/benchmarks.md: 23% at p = 0.5 on the Blue Marble
unseen regions).

Split conformal calibration fixes the level, not the density: with the ranks ``u_1 <= ... <= u_n`` of
``n`` labelled calibration rows, the region reported as "p" is the model's own highest-density
region at level

    p' = u_(k),  k = ceil((n + 1) p)   (p' = 1, the whole globe, when k > n),

which holds the truth of a new row exchangeable with the calibration rows with probability at least
p (and below p + 1 / (n + 1) when the ranks have no ties). The densities, samples, places and areas
are unchanged, so the NLL is too. :class:`Recalibration` is that table; ``calibration.json`` beside a
checkpoint (what ``globeflow calibrate`` writes) makes every command that loads the run use it.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..checks import require_finite
from ..io.files import atomic_write_text, file_sha256

__all__ = ["CALIBRATION_NAME", "Recalibration", "CalibrationError"]

#: The file beside a run's checkpoint (or in a hub-layout folder) that holds its recalibration.
CALIBRATION_NAME = "calibration.json"


class CalibrationError(ValueError):
    """A calibration file is unreadable, or was fitted on other weights."""


@dataclass(frozen=True)
class Recalibration:
    """Conformal recalibration of the highest-density credible level (module doc).

    Attributes:
        ranks: the calibration rows' HPD ranks of the truth, sorted ascending, each in [0, 1].
        data: what the rows were (the dataset's path as given).
        samples_per_row: samples with exact densities behind each rank.
        weights_sha256: the sha256 of the weights file the ranks were computed with.
        method: ``"conformal-hpd"``.
    """

    ranks: tuple[float, ...]
    data: str
    samples_per_row: int
    weights_sha256: str
    method: str = "conformal-hpd"

    def __post_init__(self) -> None:
        require_finite(self)
        r = np.asarray(self.ranks, dtype=np.float64)
        if r.size < 1 or not np.all(np.isfinite(r)) or r.min() < 0 or r.max() > 1 or np.any(np.diff(r) < 0):
            raise CalibrationError("calibration ranks must be a non-empty ascending list of numbers in [0, 1]")
        if self.method != "conformal-hpd":
            raise CalibrationError(f"unknown calibration method {self.method!r}; expected 'conformal-hpd'")

    @classmethod
    def fit(cls, ranks: np.ndarray, *, data: str, samples_per_row: int, weights_sha256: str) -> "Recalibration":
        """From the calibration rows' HPD ranks ``(n,)`` (any order)."""
        return cls(tuple(float(u) for u in np.sort(np.asarray(ranks, dtype=np.float64))), data, samples_per_row,
                   weights_sha256)

    @property
    def rows(self) -> int:
        return len(self.ranks)

    def level(self, p: float) -> float:
        """The model's own credible level to report as the ``p`` region: ``u_(ceil((n+1) p))``, or 1."""
        if not 0.0 < p <= 1.0:
            raise ValueError(f"credible level must be in (0, 1], got {p}")
        k = math.ceil((self.rows + 1) * p - 1e-12)
        return 1.0 if k > self.rows else self.ranks[k - 1]

    def describe(self) -> dict[str, Any]:
        """What an answer says about it: method, rows, data (without the ranks)."""
        return {"method": self.method, "rows": self.rows, "data": self.data, "samples_per_row": self.samples_per_row}

    def save(self, folder: str | os.PathLike) -> Path:
        path = Path(folder) / CALIBRATION_NAME
        atomic_write_text(path, json.dumps(asdict(self), indent=1))
        return path

    @classmethod
    def beside(cls, weights: str | os.PathLike) -> "Recalibration | None":
        """The recalibration stored beside a weights file, checked against it; None when there is none."""
        weights = Path(weights)
        path = weights.parent / CALIBRATION_NAME
        if not path.is_file():
            return None
        try:
            d = json.loads(path.read_text(encoding="utf-8"))
            recal = cls(tuple(d["ranks"]), str(d["data"]), int(d["samples_per_row"]), str(d["weights_sha256"]),
                        d.get("method", "conformal-hpd"))
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise CalibrationError(f"{path}: not a readable calibration file ({e})") from None
        if recal.weights_sha256 != file_sha256(weights):
            raise CalibrationError(f"{path}: fitted on other weights than {weights.name} (sha256 differs); "
                                   "re-run globeflow calibrate, or delete the file")
        return recal
