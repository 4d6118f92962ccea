"""The paper's experiments and open questions, answered by one reproducible report.

1. Euclidean vs Riemannian: RFM on S^2 against flow matching and diffusion in R^3 (same network and
   budget), on the known-answer task (per class: poles, antimeridian, multi-modal) and on Blue Marble
   (both protocols): GeoScore, median km, NLL, P/R/D/C, calibration.
2. The guidance scale w = 0, 0.5, 1, 2, 4, 8: one-sample GeoScore, precision, recall, density,
   coverage and the guided density's NLL and mass; the precision/recall picture; the best w per metric.
3. The projection onto the sphere for the R^3 models: free samples projected once against samples
   projected every step, and how far off the sphere the free ones end.
4. vMF mixtures with K = 1, 2, 3, 5, 8, 16 components against RFM.
5. Solver steps 4 ... 250 per solver: density gap and distance from the converged sample against time.

Trains what it needs with the shared trainer and caches every model and measurement under ``--work``
(a rerun resumes; a folder belongs to one configuration). Prints the answers, writes the Markdown
report (``docs/experiments.md`` for the full run) with its pictures, and the JSON of every number.

    python benchmarks/experiments.py --quick                    # < 15 min on 2 cores
    python benchmarks/experiments.py --demo runs/demo           # the full run (reuses the demo's data and model)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from globeflow.apps.experiments import EXPERIMENTS, PRESETS, TASKS, run_experiments


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="smaller models and fewer rows (the 'quick' configuration)")
    p.add_argument("--config", choices=sorted(PRESETS), default=None, help="a named configuration (default: full, "
                                                                           "or quick with --quick)")
    p.add_argument("--work", default=None, help="cache of data, models and measurements "
                                                "(default bench_out/experiments[_<config>])")
    p.add_argument("--report", default=None, help="the Markdown report (default docs/experiments.md for a complete "
                                                  "full run, else <work>/experiments.md)")
    p.add_argument("--only", default=",".join(EXPERIMENTS), help="experiments to run: " + ", ".join(EXPERIMENTS))
    p.add_argument("--tasks", default=",".join(TASKS), help="tasks: " + ", ".join(TASKS))
    p.add_argument("--demo", default=None, help="a `globeflow demo` folder whose Blue Marble data and rfm model "
                                                "to reuse when they are the full configuration's")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--no-progress", action="store_true")
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    name = a.config or ("quick" if a.quick else "full")
    config = PRESETS[name]
    only = [x for x in a.only.split(",") if x]
    tasks = [x for x in a.tasks.split(",") if x]
    work = Path(a.work or ("bench_out/experiments" + ("" if name == "full" else f"_{name}")))
    complete = set(only) == set(EXPERIMENTS) and set(tasks) == set(TASKS)
    report = Path(a.report or ("docs/experiments.md" if name == "full" and complete else work / "experiments.md"))
    # The command each table row names: this invocation's settings (the rows' own --only and --tasks added).
    command = ("python benchmarks/experiments.py" + ("" if name == "full" else " --quick" if name == "quick" else
                                                     f" --config {name}")
               + (f" --demo {a.demo}" if a.demo else "") + (f" --work {a.work}" if a.work else ""))
    try:
        out = run_experiments(config, work, report=report, only=only, tasks=tasks, demo=a.demo, command=command,
                              progress=not a.no_progress)
    except ValueError as e:
        print(f"experiments: error: {e}", file=sys.stderr)
        return 2
    text = report.read_text()
    print(text[text.index("## Answers"):text.index("\n## ", text.index("## Answers") + 5)])
    print(f"report: {report}; numbers: {report.with_suffix('.json')}; {out['seconds']['total'] / 60:.1f} min")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
