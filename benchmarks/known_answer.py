"""Known-answer benchmark: each generative variant against the true conditional density.

Trains ``rfm``, ``fm`` and ``diffusion`` with the demo's default config on the known-answer task
(:mod:`globeflow.apps.tasks.known_answer`), then reports per model:

- GeoScore of point predictions (best expected GeoScore of 64 unguided samples; and the published
  recipe, one sample with guidance 2) as a fraction of the Bayes-optimal GeoScore on the same points;
- the mean *true* log-density of generated samples minus the true ``-H`` (0 is perfect; negative:
  samples fall where the truth has little mass) at 8, 16, 32, 64 and 250 steps, per solver;
- the time per 1,000 samples of each sampler (2 CPU threads unless ``--threads``).

Prints a Markdown table and writes ``--out`` JSON. Trained runs are cached under ``--work``.

    python benchmarks/known_answer.py --out bench_out/known_answer.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from globeflow.apps.demos.known_answer import DemoConfig, known_answer_report, make_task_data
from globeflow.apps.tasks.known_answer import default_task
from globeflow.flow import SamplerConfig
from globeflow.inference import Geolocator
from globeflow.io import CHECKPOINT_NAME, atomic_write_text, load_checkpoint
from globeflow.train import train

STEPS = (8, 16, 32, 64, 250)


def samplers_for(kind: str) -> list[SamplerConfig]:
    if kind == "diffusion":
        return [SamplerConfig(method="ddim", steps=s) for s in STEPS]
    # RK4 at 250 steps costs 1,000 evaluations per sample; the converged reference is Euler 250.
    return ([SamplerConfig(method="euler", steps=s) for s in STEPS]
            + [SamplerConfig(method="rk4", steps=s) for s in STEPS[:-1]])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="bench_out/known_answer.json")
    p.add_argument("--work", default="bench_out/known_answer", help="cache of data and trained runs")
    p.add_argument("--models", default="rfm,fm,diffusion")
    p.add_argument("--steps", type=int, default=None, help="training steps (default: the demo's)")
    p.add_argument("--density-samples", type=int, default=4000, help="samples per class for the density gap")
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    cfg = DemoConfig()
    tcfg = cfg.train if a.steps is None else cfg.train.__class__(**{**cfg.train.__dict__, "steps": a.steps})
    task = default_task()
    work = Path(a.work)
    train_path, _ = make_task_data(task, work / "data", cfg.train_rows, cfg.test_rows)
    test = task.sample(cfg.test_rows, generator=torch.Generator().manual_seed(1))
    results = {"train_config": tcfg.__dict__, "network": dict(cfg.network), "threads": a.threads, "models": {}}
    for kind in a.models.split(","):
        run = work / kind
        t0 = time.time()
        done = (run / CHECKPOINT_NAME).exists() and load_checkpoint(run, prefixes=()).meta["step"] >= tcfg.steps
        if not done:
            train(train_path, run, kind=kind, network=dict(cfg.network), config=tcfg, resume=True)
        train_s = time.time() - t0 if not done else json.loads((run / "bench_train_seconds.json").read_text())
        if not done:
            atomic_write_text(run / "bench_train_seconds.json", json.dumps(train_s))
        g = Geolocator.load(run)
        report = known_answer_report(g, task, *test, point_samples=cfg.point_samples,
                                     density_samples=a.density_samples, samplers=tuple(samplers_for(kind)))
        report["train_seconds"] = train_s
        results["models"][kind] = report
        print(f"{kind}: trained in {train_s:.0f} s", file=sys.stderr)
    results["mean_entropy"] = next(iter(results["models"].values()))["mean_entropy"]
    table = render(results)
    print(table)
    results["markdown"] = table
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(a.out, json.dumps(results, indent=2))
    return 0


def render(results: dict) -> str:
    lines = ["| model | train s | GeoScore / Bayes (best of 64) | GeoScore / Bayes (1 sample, w=2) |",
             "|---|---|---|---|"]
    for kind, r in results["models"].items():
        lines.append(f"| {kind} | {r['train_seconds']:.0f} | {r['geoscore']['ratio_to_bayes']:.3f} | "
                     f"{r['single']['ratio_to_bayes']:.3f} |")
    lines += ["", "Mean true log-density of samples minus true -H (nats; 0 is perfect), and s per 1,000 samples:", "",
              "| model | solver | " + " | ".join(f"{s} steps" for s in STEPS) + " |",
              "|---|---|" + "---|" * len(STEPS)]
    for kind, r in results["models"].items():
        by_method: dict[str, dict[int, dict]] = {}
        for d in r["density"]:
            by_method.setdefault(d["method"], {})[d["steps"]] = d
        for method, cells in by_method.items():
            row = [f"{cells[s]['gap_nats']:+.3f} ({cells[s]['seconds_per_1000']:.2f} s)" if s in cells else "-"
                   for s in STEPS]
            lines.append(f"| {kind} | {method} | " + " | ".join(row) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
