"""Density answers on the known-answer task: calibration, mode seeking, and nside-64 density maps.

Two parts, each printing a Markdown table and writing JSON (``--out``):

1. ``answers`` (the known-answer benchmark's RFM model, demo config): on test rows drawn from the
   task, the coverage of the p-credible regions for p = 0.1 ... 0.9 (each row's randomised rank of
   the truth's exact density among ``--samples`` samples with exact densities), and the GeoScore of
   the point strategies: one sample (guided w=2, the published recipe; and unguided), the densest of
   the samples (mode seeking), the best expected GeoScore among them, the grid maximum of the
   density map (on ``--grid-rows`` rows), and the Bayes-optimal predictor of the true distribution.
2. ``maps`` (the default model size, dim 256 / depth 6, trained on the same task): for one image of
   each class, the coarse-to-fine density map at nside 64: seconds, exact solves, total mass, and the
   error of its 1,000 densest cells against a converged evaluation (RK4, 64 steps) at those cells.

    python benchmarks/density.py --part answers --out bench_out/density_answers.json
    python benchmarks/density.py --part maps --out bench_out/density_maps.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import healpy
import numpy as np
import torch

from globeflow import geo
from globeflow.apps.demos.known_answer import DemoConfig, make_task_data
from globeflow.apps.tasks.known_answer import default_task
from globeflow.evaluation.calibration import LEVELS, calibration_summary, hpd_ranks
from globeflow.evaluation.metrics import point_metrics
from globeflow.inference import Geolocator
from globeflow.inference.density import MapConfig
from globeflow.inference.points import best_expected_geoscore
from globeflow.io import CHECKPOINT_NAME, atomic_write_text
from globeflow.train import TrainConfig, train


def trained(work: Path, name: str, network: dict, config: TrainConfig) -> Geolocator:
    run = work / name
    if not (run / CHECKPOINT_NAME).exists():
        train_path, _ = make_task_data(default_task(), work / "data", DemoConfig().train_rows, DemoConfig().test_rows)
        train(train_path, run, network=network, config=config)
    return Geolocator.load(run, device="cpu")


def part_answers(a: argparse.Namespace) -> dict:
    task, cfg = default_task(), DemoConfig()
    g = trained(Path(a.work), "rfm", dict(cfg.network), cfg.train)
    latlon, emb, labels = task.sample(a.rows, generator=torch.Generator().manual_seed(11))
    t0 = time.perf_counter()
    lp_true = g.log_prob(emb, latlon, steps=16)
    t_true = time.perf_counter() - t0
    t0 = time.perf_counter()
    samples, lp_samples = [], []
    for i in range(0, a.rows, 50):
        s, lp = g.sample_with_log_prob(emb[i:i + 50], a.samples, steps=16, seed=i)
        samples.append(s)
        lp_samples.append(lp)
    t_samples = time.perf_counter() - t0
    samples, lp_samples = torch.cat(samples), torch.cat(lp_samples)
    u = hpd_ranks(lp_true.numpy(), lp_samples.numpy())
    calib = calibration_summary(u, samples_per_row=a.samples)
    truth = latlon.double()
    points = {
        "single sample, w=2 (published)": g.predict(emb, strategy="single", guidance=2.0),
        "single sample, w=0": g.predict(emb, strategy="single", guidance=0.0),
        f"mode seeking (densest of {a.samples})": samples[torch.arange(a.rows), lp_samples.argmax(1)],
        f"best expected GeoScore (of {a.samples})": geo.xyz_to_latlon(best_expected_geoscore(geo.latlon_to_xyz(samples))),
    }
    scores = {k: point_metrics(v.double(), truth)["geoscore"] for k, v in points.items()}
    n_grid = min(a.grid_rows, a.rows)
    if n_grid:
        t0 = time.perf_counter()
        maps = g.density_maps(emb[:n_grid], MapConfig(nside=64), samples=samples[:n_grid], progress=True)
        grid_pts = torch.tensor([m.argmax() for m in maps], dtype=torch.float64)
        scores[f"grid maximum, nside 64 (first {n_grid} rows)"] = point_metrics(grid_pts, truth[:n_grid])["geoscore"]
        for k, v in points.items():
            scores[f"{k} (first {n_grid} rows)"] = point_metrics(v[:n_grid].double(), truth[:n_grid])["geoscore"]
        seconds_grid = time.perf_counter() - t0
    else:
        seconds_grid = None
    scores["Bayes-optimal for the true distribution"] = task.bayes_geoscore_for(truth, labels).mean().item()
    entropy = task.entropy()[labels].mean().item()
    nll = -lp_true.mean().item()
    lines = [f"Known-answer task, {a.rows} test rows, RFM demo model (dim {dict(cfg.network)['dim']}, depth "
             f"{dict(cfg.network)['depth']}).", "",
             f"NLL {nll:.3f} nats/sr vs true conditional entropy {entropy:.3f} (gap {nll - entropy:+.3f}).", "",
             "| level p | " + " | ".join(f"{p:.1f}" for p in LEVELS) + " |",
             "|---|" + "---|" * len(LEVELS),
             "| coverage | " + " | ".join(f"{c:.3f}" for c in calib["coverage"]) + " |",
             "", f"Binomial standard error at p = 0.5: {calib['stderr'][4]:.3f}.", "",
             "| point strategy | GeoScore |", "|---|---|"]
    lines += [f"| {k} | {v:.1f} |" for k, v in scores.items()]
    table = "\n".join(lines)
    return {"rows": a.rows, "samples": a.samples, "nll": nll, "entropy": entropy, "calibration": calib,
            "geoscore": scores, "seconds": {"truth_log_prob": t_true, "samples_with_density": t_samples,
                                            "grid_maps": seconds_grid}, "markdown": table}


def part_maps(a: argparse.Namespace) -> dict:
    task = default_task()
    g = trained(Path(a.work), "rfm256", dict(dim=256, depth=6), TrainConfig())
    vectors = task.class_vectors()
    rows = []
    for c in a.classes:
        emb = vectors[c:c + 1]
        t0 = time.perf_counter()
        (m,) = g.density_maps(emb, MapConfig(nside=64), seed=c)
        seconds = time.perf_counter() - t0
        top = np.argsort(-m.log_density)[:1000]
        exact_share = float((m.evaluated_nside[top] == 64).mean())
        pts = np.stack(healpy.pix2vec(64, top, nest=True), -1)[None]
        t0 = time.perf_counter()
        ref, _, _ = g.log_density_points(emb.float(), pts, steps=64)
        ref32, _, _ = g.log_density_points(emb.float(), pts[:, :200], steps=32)
        err = m.log_density[top] - ref[0]
        rows.append({"class": c, "seconds": seconds, "exact_solves": m.evaluations, "nfe": m.nfe,
                     "mass": m.mass(), "top1000_exact_share": exact_share,
                     "top1000_max_abs_err": float(np.abs(err).max()), "top1000_mean_abs_err": float(np.abs(err).mean()),
                     "rk4_32_vs_64_max_abs": float(np.abs(ref32[0] - ref[0, :200]).max()),
                     "area90_km2": m.credible_region(0.9).area_km2, "reference_seconds": time.perf_counter() - t0})
        print(rows[-1], file=sys.stderr)
    lines = ["Coarse-to-fine density maps at nside 64 (49,152 cells), default model size (dim 256, depth 6), "
             f"{torch.get_num_threads()} CPU threads, one image per class.", "",
             "| class | seconds | exact solves | total mass | top-1000 cells: max / mean abs error vs RK4-64 (nats) "
             "| RK4-32 vs RK4-64 (top 200) | 90% region km² |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['class']} | {r['seconds']:.1f} | {r['exact_solves']} | {r['mass']:.4f} | "
                     f"{r['top1000_max_abs_err']:.4f} / {r['top1000_mean_abs_err']:.4f} | "
                     f"{r['rk4_32_vs_64_max_abs']:.4f} | {r['area90_km2']:.3g} |")
    table = "\n".join(lines)
    return {"rows": rows, "markdown": table}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--part", choices=("answers", "maps"), required=True)
    p.add_argument("--out", default=None)
    p.add_argument("--work", default="bench_out/known_answer")
    p.add_argument("--rows", type=int, default=1000)
    p.add_argument("--samples", type=int, default=64)
    p.add_argument("--grid-rows", type=int, default=40)
    p.add_argument("--classes", type=int, nargs="+", default=list(range(8)))
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    result = part_answers(a) if a.part == "answers" else part_maps(a)
    print(result["markdown"])
    out = Path(a.out or f"bench_out/density_{a.part}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
