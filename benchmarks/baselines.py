"""Every model and baseline on one task, trained by the same trainer and scored by ``globeflow evaluate``.

Tasks:

- ``blue-marble``: the demo's real image task (EfficientNet-Lite0 embeddings of Blue Marble patches),
  both protocols (unseen regions, random split); models at the demo's size and training length.
- ``known-answer``: synthetic embeddings with a closed-form conditional density; models at the
  known-answer demo's size and training length. The true density's NLL and the Bayes-optimal
  GeoScore are printed as the ceiling.

Models: rfm (reused from the demo when present), fm, diffusion, and the trained baselines vmf,
vmf-mixture (3 components), geocell (HEALPix nside 16, haversine-smoothed labels), regression, each
with the same network width, depth, optimiser and steps; plus training-free nearest neighbours (k = 1,
k = 10) and uniform guessing. Every report is an ordinary ``globeflow evaluate`` JSON under
``--work/reports``: the benchmark resumes where it stopped, and ``globeflow compare`` reproduces the
tables. Prints Markdown tables and writes ``--out`` JSON.

    python benchmarks/baselines.py --task blue-marble --out bench_out/baselines_blue_marble.json
    python benchmarks/baselines.py --task known-answer --out bench_out/baselines_known_answer.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import torch

from globeflow.evaluation import compare_reports, evaluate_to_file
from globeflow.evaluation.baselines import baseline_to_file
from globeflow.io import CHECKPOINT_NAME, atomic_write_text, load_checkpoint
from globeflow.train import TrainConfig, train

TRAINED = ("rfm", "fm", "diffusion", "vmf", "vmf-mixture", "geocell", "regression")


@dataclasses.dataclass
class Setup:
    train: Path
    tests: dict[str, Path]
    network: dict[str, int]
    config: TrainConfig
    runs: Path
    reuse_rfm: Path | None = None


def blue_marble_setup(work: Path, progress: bool) -> Setup:
    from globeflow.apps.demos.blue_marble import BlueMarbleDemoConfig, run_blue_marble_demo

    cfg = BlueMarbleDemoConfig()
    run_blue_marble_demo(work, progress=progress)  # cached: builds data and the rfm model once
    data = work / "data"
    return Setup(data / "train.parquet", {"unseen": data / "test_unseen.parquet", "random": data / "test_random.parquet"},
                 dict(cfg.network), cfg.train, work / "baselines", reuse_rfm=work / "rfm")


def known_answer_setup(work: Path, progress: bool) -> Setup:
    from globeflow.apps.demos.known_answer import DemoConfig, make_task_data
    from globeflow.apps.tasks.known_answer import default_task

    cfg = DemoConfig()
    train_path, test_path = make_task_data(default_task(), work / "data", cfg.train_rows, cfg.test_rows)
    rfm = work / "rfm"  # the known-answer benchmark's run, when present
    return Setup(train_path, {"test": test_path}, dict(cfg.network), cfg.train, work / "baselines",
                 reuse_rfm=rfm if (rfm / CHECKPOINT_NAME).exists() else None)


def trained_run(setup: Setup, kind: str, progress: bool) -> Path:
    if kind == "rfm" and setup.reuse_rfm is not None:
        return setup.reuse_rfm
    run = setup.runs / kind
    done = (run / CHECKPOINT_NAME).exists() and load_checkpoint(run, prefixes=()).meta["step"] >= setup.config.steps
    if not done:
        train(setup.train, run, kind=kind, network=setup.network, config=setup.config, resume=True, progress=progress)
    return run


def known_answer_ceiling(test_path: Path) -> dict[str, float]:
    """The truth on the test rows: its NLL (true conditional density given the embedding) and the
    GeoScore of the Bayes-optimal guess."""
    import pyarrow.parquet as pq

    from globeflow import geo
    from globeflow.apps.tasks.known_answer import default_task
    from globeflow.evaluation.baselines import read_arrays

    task = default_task()
    latlon, emb, _, _ = read_arrays(test_path)
    labels = torch.as_tensor(pq.read_table(test_path, columns=["label"]).column("label").to_pylist())
    truth = torch.from_numpy(latlon)
    lp = task.log_prob_given_embedding(geo.latlon_to_xyz(truth), torch.from_numpy(emb))
    return {"true_nll": -lp.mean().item(), "bayes_geoscore": task.bayes_geoscore_for(truth, labels).mean().item()}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--task", choices=("blue-marble", "known-answer"), required=True)
    p.add_argument("--out", default=None, help="JSON summary (default bench_out/baselines_<task>.json)")
    p.add_argument("--work", default=None, help="cache of data, runs and reports (default: the demo's / the "
                                                "known-answer benchmark's folder)")
    p.add_argument("--models", default=",".join(TRAINED) + ",knn1,knn10,uniform")
    p.add_argument("--num-samples", type=int, default=64, help="samples per image for the point answer")
    p.add_argument("--calibration-samples", type=int, default=64)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--no-progress", action="store_true")
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    progress = not a.no_progress
    work = Path(a.work or ("runs/demo" if a.task == "blue-marble" else "bench_out/known_answer"))
    out = Path(a.out or f"bench_out/baselines_{a.task.replace('-', '_')}.json")
    t0 = time.time()
    setup = (blue_marble_setup if a.task == "blue-marble" else known_answer_setup)(work, progress)
    models = [m for m in a.models.split(",") if m]
    reports: dict[str, dict[str, Path]] = {name: {} for name in setup.tests}
    seconds: dict[str, float] = {}
    for model in models:
        t1 = time.time()
        run = trained_run(setup, model, progress) if model in TRAINED else None
        for split, test in setup.tests.items():
            report = work / "reports" / split / f"{model}.json"
            reports[split][model] = report
            if report.exists():
                continue
            print(f"[{a.task}] {model} on {split}", file=sys.stderr)
            if run is not None:
                evaluate_to_file(run, test, report, num_samples=a.num_samples, progress=progress,
                                 calibration_samples=a.calibration_samples)
            elif model.startswith("knn"):
                baseline_to_file("knn", test, report, train=setup.train, k=int(model[3:]))
            else:
                baseline_to_file("uniform", test, report, seed=7)
        seconds[model] = round(time.time() - t1, 1)
    summary: dict[str, Any] = {"task": a.task, "train_config": dataclasses.asdict(setup.config),
                               "network": setup.network, "num_samples": a.num_samples, "splits": {},
                               "seconds": seconds, "total_seconds": round(time.time() - t0, 1)}
    if a.task == "known-answer":
        summary["ceiling"] = known_answer_ceiling(setup.tests["test"])
    for split, paths in reports.items():
        table = compare_reports([paths[m] for m in models], work / "reports" / f"{split}.md")
        print(f"\n### {a.task}, {split}\n\n{table}")
        summary["splits"][split] = {m: json.loads(paths[m].read_text())["metrics"] for m in models}
        summary["splits"][split]["table"] = table
    if "ceiling" in summary:
        c = summary["ceiling"]
        print(f"\nTruth: NLL {c['true_nll']:.3f} nats/sr, Bayes-optimal GeoScore {c['bayes_geoscore']:.0f}")
    print(f"uniform density NLL: {math.log(4 * math.pi):.3f} nats/sr")
    atomic_write_text(out, json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
