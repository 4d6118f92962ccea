"""Run the five experiments (or some of them) and write the report: JSON of every number, Markdown
with tables and pictures."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from ...io.files import atomic_write_text
from .config import EXPERIMENTS, ExperimentsConfig
from .geometry import run_geometry
from .guidance import run_guidance
from .mixtures import run_mixtures
from .projection import run_projection
from .report import render_report
from .setup import Workspace
from .steps import run_steps

__all__ = ["run_experiments", "RUNNERS", "TASKS"]

RUNNERS = {"geometry": run_geometry, "guidance": run_guidance, "projection": run_projection,
           "mixtures": run_mixtures, "steps": run_steps}
TASKS = ("known-answer", "blue-marble")


def run_experiments(config: ExperimentsConfig, work: str | Path, *, report: str | Path, pictures: str | Path | None = None,
                    only: Sequence[str] = EXPERIMENTS, tasks: Sequence[str] = TASKS, demo: str | Path | None = None,
                    command: str = "python benchmarks/experiments.py", progress: bool = True) -> dict[str, Any]:
    """Measure ``only`` (of :data:`EXPERIMENTS`) on ``tasks`` with ``config``, caching under ``work``;
    write ``report`` (Markdown), its pictures (``pictures``, default beside it) and ``report``'s
    ``.json``. Returns the results by experiment, with ``seconds``."""
    unknown = [e for e in only if e not in EXPERIMENTS] + [t for t in tasks if t not in TASKS]
    if unknown:
        raise ValueError(f"unknown experiment or task {unknown[0]!r}; experiments: {', '.join(EXPERIMENTS)}; "
                         f"tasks: {', '.join(TASKS)}")
    if "steps" in only and "known-answer" not in tasks:
        raise ValueError("the steps experiment runs on the known-answer task: add it to --tasks")
    t_start = time.time()
    ws = Workspace(work, config, demo=demo, progress=progress, blue_marble="blue-marble" in tasks)
    seconds: dict[str, float] = {"setup": round(time.time() - t_start, 1)}
    results: dict[str, Any] = {}
    for name in only:
        t0 = time.time()
        results[name] = RUNNERS[name](ws)
        seconds[name] = round(time.time() - t0, 1)
    seconds["total"] = round(time.time() - t_start, 1)
    seconds["threads"] = torch.get_num_threads()
    # What the numbers cost when they were made, whichever invocation made them (a resumed run reads
    # most of them back): training per run, measurements per cached cell.
    # Models are trained inside the measurements that need them, so training is part of their seconds.
    train_seconds = ws.train_seconds()
    seconds["training"] = round(sum(train_seconds.values()), 1)
    seconds["measurements"] = round(sum(ws.measure_seconds.values()), 1)
    report = Path(report)
    shown = config.to_dict()
    if "blue-marble" not in tasks:
        shown["blue_marble"] = None
    markdown = render_report(results, config=shown, seconds=seconds, command=command,
                             pictures=Path(pictures) if pictures is not None else report.parent / (report.stem + "_pictures"),
                             markdown=report)
    atomic_write_text(report, markdown)
    out = {"config": config.to_dict(), "seconds": seconds, "train_seconds": train_seconds,
           "measure_seconds": ws.measure_seconds, "results": results}
    atomic_write_text(report.with_suffix(".json"), json.dumps(out, indent=2))
    return out

