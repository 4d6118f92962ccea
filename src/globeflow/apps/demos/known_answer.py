"""``globeflow demo``: train and evaluate on the known-answer task, with nothing to download.

The task (:mod:`globeflow.tasks.known_answer`) has a closed-form conditional density, so the report
compares the model with the truth: its GeoScore against the Bayes-optimal predictor's on the same
test points, and the true log-density of its samples against the true negative entropy. What the
demo builds is cached in its output folder: a second run reuses the data and the trained model.
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ...data.embeddings import write_embeddings
from ...evaluation.metrics import point_metrics
from ...flow.sampling import SamplerConfig
from ...inference.geolocator import Geolocator
from ...io.checkpoint import CHECKPOINT_NAME, load_checkpoint
from ...io.files import atomic_write_text
from ...train import TrainConfig, train
from ..tasks.known_answer import KnownAnswerTask, default_task

__all__ = ["DemoConfig", "known_answer_report", "run_demo", "make_task_data"]


@dataclass(frozen=True)
class DemoConfig:
    """Sizes of the demo (and of the known-answer benchmark); trains in ~2 minutes on 2 CPU cores.

    The network is half the library default's width (128 instead of 256): the task's 8 classes with
    32-d embeddings need no more, it reaches ~99% of the Bayes-optimal GeoScore either way, and
    sampling is 4x cheaper (docs/benchmarks.md).
    """

    train_rows: int = 200_000
    test_rows: int = 1000
    network: tuple[tuple[str, int], ...] = (("dim", 128), ("depth", 6))
    train: TrainConfig = TrainConfig(steps=4000, batch_size=512, val_every=1000, ckpt_every=500)
    #: Samples per test image for the expected-GeoScore point estimate.
    point_samples: int = 64
    #: Samples per class for the true-log-density check.
    density_samples: int = 2000


def make_task_data(task: KnownAnswerTask, folder: Path, train_rows: int, test_rows: int) -> tuple[Path, Path]:
    """Write ``train.parquet`` / ``test.parquet`` (with a ``label`` column) unless already there."""
    paths = folder / "train.parquet", folder / "test.parquet"
    for path, rows, seed in ((paths[0], train_rows, 0), (paths[1], test_rows, 1)):
        if not path.exists():
            latlon, emb, labels = task.sample(rows, generator=torch.Generator().manual_seed(seed))
            write_embeddings(path, latlon, emb, metadata={"label": labels.tolist()})
    return paths


def _density_gap(geolocator: Geolocator, task: KnownAnswerTask, entropy: torch.Tensor,
                 sampler: SamplerConfig, num: int) -> dict[str, Any]:
    """Mean true log-density of model samples minus the true one (``-H``), per class and overall."""
    emb = task.class_vectors()
    t0 = time.perf_counter()
    xyz = geolocator.sample_xyz(emb, num, steps=sampler.steps, guidance=sampler.guidance, method=sampler.method)
    seconds = time.perf_counter() - t0
    labels = torch.arange(task.num_classes).unsqueeze(1).expand(-1, num)
    gap = task.log_prob(xyz.double().cpu(), labels).mean(dim=1) + entropy
    return {"method": sampler.method, "steps": sampler.steps, "gap_nats": gap.mean().item(),
            "gap_per_class": [round(g, 4) for g in gap.tolist()],
            "seconds_per_1000": 1000 * seconds / (num * task.num_classes)}


def known_answer_report(geolocator: Geolocator, task: KnownAnswerTask, test_latlon: torch.Tensor,
                        test_emb: torch.Tensor, test_labels: torch.Tensor, *, point_samples: int = 64,
                        density_samples: int = 2000, samplers: tuple[SamplerConfig, ...] | None = None,
                        seed: int = 0) -> dict[str, Any]:
    """Score a model on the known-answer task against the truth.

    Returns a dict with ``bayes_geoscore`` and, for the ``geoscore`` and ``single`` point strategies,
    their metrics and ``ratio_to_bayes``; ``density``: one entry per sampler with the gap between the
    mean true log-density of generated samples and the true ``-H`` (0 is perfect), and the time per
    1,000 samples; ``entropy``: the true per-class entropies (nats per steradian).
    """
    entropy = task.entropy()
    bayes = task.bayes_geoscore_for(test_latlon, test_labels).mean().item()
    report: dict[str, Any] = {"bayes_geoscore": bayes, "entropy": entropy.tolist(),
                              "mean_entropy": entropy.mean().item()}
    for strategy, kwargs in (("geoscore", {"num_samples": point_samples}), ("single", {})):
        t0 = time.perf_counter()
        pred = geolocator.predict(test_emb, strategy=strategy, seed=seed, **kwargs)
        metrics = point_metrics(pred, test_latlon)
        metrics["ratio_to_bayes"] = metrics["geoscore"] / bayes
        metrics["seconds"] = time.perf_counter() - t0
        report[strategy] = metrics
    samplers = samplers or (geolocator.model.default_sampler(),)
    report["density"] = [_density_gap(geolocator, task, entropy, s, density_samples) for s in samplers]
    return report


def _markdown(report: dict[str, Any]) -> str:
    rows = [
        "| point estimate | GeoScore | / Bayes | median km | acc 200 km | acc 750 km |",
        "|---|---|---|---|---|---|",
        f"| Bayes-optimal (true density) | {report['bayes_geoscore']:.0f} | 1.000 | | | |",
    ]
    for name, label in (("geoscore", "best expected GeoScore of samples"), ("single", "one sample, guidance 2")):
        m = report[name]
        rows.append(f"| {label} | {m['geoscore']:.0f} | {m['ratio_to_bayes']:.3f} | {m['median_km']:.0f} | "
                    f"{m['acc_200km']:.3f} | {m['acc_750km']:.3f} |")
    rows += ["", "| sampler | steps | mean true log-density - true (nats) | s / 1000 samples |", "|---|---|---|---|"]
    for d in report["density"]:
        rows.append(f"| {d['method']} | {d['steps']} | {d['gap_nats']:+.3f} | {d['seconds_per_1000']:.3f} |")
    return "\n".join(rows)


def run_demo(out: Path, *, steps: int | None = None, device: str | None = None, progress: bool = True,
             config: DemoConfig = DemoConfig()) -> dict[str, Any]:
    """Build the task data, train an RFM model (or reuse a finished one), evaluate, write reports."""
    out = Path(out)
    task = default_task()
    train_path, test_path = make_task_data(task, out / "data", config.train_rows, config.test_rows)
    run = out / "rfm"
    tcfg = config.train if steps is None else dataclasses.replace(config.train, steps=steps)
    t0 = time.time()
    done = (run / CHECKPOINT_NAME).exists() and load_checkpoint(run, prefixes=()).meta["step"] >= tcfg.steps
    if not done:
        train(train_path, run, network=dict(config.network), config=tcfg, resume=True, device=device,
              progress=progress)
    train_seconds = time.time() - t0
    geolocator = Geolocator.load(run, device=device)
    test_latlon, test_emb, test_labels = task.sample(config.test_rows, generator=torch.Generator().manual_seed(1))
    report = known_answer_report(geolocator, task, test_latlon, test_emb, test_labels,
                                 point_samples=config.point_samples, density_samples=config.density_samples)
    report["train_seconds"] = round(train_seconds, 1)
    report["reused_trained_model"] = done
    report["markdown"] = _markdown(report)
    atomic_write_text(out / "report.json", json.dumps(report, indent=2))
    atomic_write_text(out / "report.md", report["markdown"] + "\n")
    return report
