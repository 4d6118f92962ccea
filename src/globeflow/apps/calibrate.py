"""``globeflow calibrate RUN CAL_DATA --out NEW_RUN``: a copy of a run whose credible regions are
recalibrated on labelled held-out data (:mod:`globeflow.inference.calibration`).

``NEW_RUN`` holds the same weights file (a byte copy, so the calibration can check it is used with
the weights it was fitted on), the run's config files, ``calibration.json`` and
``calibration_report.json`` (the coverage on the calibration data before and after, the levels used).
Every command that takes a run takes ``NEW_RUN``: predict, map, evaluate, serve, export.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from ..data.embeddings import EmbeddingDataset
from ..evaluation.calibration import LEVELS, calibration_summary, fit_recalibration, recalibrated_summary
from ..inference.calibration import CALIBRATION_NAME
from ..inference.loading import load_locator
from ..io.files import atomic_write, atomic_write_text

__all__ = ["calibrate_to_dir", "COPIED_FILES"]

#: Files copied beside the weights when present: a run's config, a hub folder's configs and card.
COPIED_FILES = ("config.json", "globeflow.json", "README.md")


def calibrate_to_dir(run: str | os.PathLike, data: str | os.PathLike, out: str | os.PathLike, *,
                     calibration_samples: int = 64, batch_size: int = 256, device: str | None = None,
                     skip_invalid: bool = False, seed: int = 0, progress: bool = True) -> dict[str, Any]:
    """Fit the recalibration of ``run`` on ``data`` and write ``out`` (module doc); returns a summary."""
    locator = load_locator(run, device=device)
    locator.require_density()
    weights = Path(locator.source["path"])
    out = Path(out)
    if out.resolve() == weights.parent.resolve():
        raise ValueError(f"--out {out}: that is the run itself; calibrate writes a new run directory")
    dataset = EmbeddingDataset(data, skip_invalid=skip_invalid, expected_dim=locator.embedding_dim)
    info = dataset.scan()
    recal, ranks = fit_recalibration(locator, dataset, calibration_samples=calibration_samples,
                                     batch_size=batch_size, progress=progress, seed=seed)
    out.mkdir(parents=True, exist_ok=True)
    for name in (weights.name, *COPIED_FILES):
        source = weights.parent / name
        if source.is_file() and name != CALIBRATION_NAME:
            atomic_write(out / name, lambda tmp, source=source: shutil.copyfile(source, tmp))
    # The calibration is written last: a killed run leaves no calibration.json that names weights it
    # does not have beside it.
    report = {"run": str(run), "data": str(data), "rows": recal.rows, "skipped_rows": info.num_skipped,
              "before": calibration_summary(ranks, LEVELS, samples_per_row=calibration_samples),
              "after_on_calibration_data": recalibrated_summary(ranks, recal, LEVELS),
              "note": "coverage after recalibration on the calibration rows themselves holds by construction; "
                      "judge it with globeflow evaluate on other held-out rows"}
    atomic_write_text(out / "calibration_report.json", json.dumps(report, indent=2))
    recal.save(out)
    return {"out": str(out), "rows": recal.rows, "skipped_rows": info.num_skipped,
            "levels": {f"{p:g}": recal.level(p) for p in (0.5, 0.9, 0.95)},
            "coverage_before": dict(zip((f"{p:g}" for p in LEVELS), report["before"]["coverage"]))}
