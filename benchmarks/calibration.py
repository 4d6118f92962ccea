"""Recalibrated credible regions on the Blue Marble task: coverage before and after ``globeflow calibrate``.

Protocol (issue 15): the unseen-regions test patches of ``globeflow demo`` are split by their held-out
block (the HEALPix cell at ``BlueMarbleConfig.holdout_nside``, nested): a random half of the blocks
calibrates, the other half tests, so no test block was seen by the calibration either. The same
is done on the random split (in distribution) for reference, by random halves of the rows.

It runs the real commands: the halves are written as embedding datasets, ``globeflow calibrate RUN
CAL --out NEW_RUN`` fits the recalibration, and ``globeflow evaluate NEW_RUN TEST`` reports the
coverage of the model's own regions (``calibration``) and of the recalibrated ones
(``calibration.after_recalibration``), with the NLL (which recalibration leaves unchanged).
Prints a Markdown table and writes JSON.

    python globeflow demo                    # once: runs/demo (about 10 minutes on 2 cores)
    python benchmarks/calibration.py --demo runs/demo --out bench_out/calibration.json
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

from globeflow.apps.cli import main as cli
from globeflow.apps.tasks.blue_marble import BlueMarbleConfig
from globeflow.data.embeddings import write_embeddings
from globeflow.data.embeddings import EmbeddingDataset
from globeflow.evaluation.baselines import read_arrays
from globeflow.evaluation.calibration import density_dataset
from globeflow.inference import Geolocator
from globeflow.inference.calibration import Recalibration
from globeflow.geo import healpix
from globeflow.io import atomic_write_text

PROTOCOLS = {"unseen_regions": "test_unseen.parquet", "random": "test_random.parquet"}


def halves(latlon: np.ndarray, by_block: bool, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Row indices of the calibration and test halves: by held-out block, or by row."""
    rng = np.random.default_rng(seed)
    if not by_block:
        order = rng.permutation(len(latlon))
        return np.sort(order[: len(order) // 2]), np.sort(order[len(order) // 2:])
    blocks = healpix.ang2pix(BlueMarbleConfig().holdout_nside, latlon[:, 1], latlon[:, 0], nest=True, lonlat=True)
    unique = rng.permutation(np.unique(blocks))
    cal_blocks = unique[: len(unique) // 2]
    cal = np.isin(blocks, cal_blocks)
    return np.flatnonzero(cal), np.flatnonzero(~cal)


def repeated_splits(demo: Path, work: Path, rows: int, samples: int, splits: int, seed: int) -> dict:
    """Coverage at p = 0.5 and 0.9 on the test half after recalibrating on the other half, over
    ``splits`` random halvings of the unseen-region blocks, from each row's HPD rank computed once."""
    path = demo / "data" / PROTOCOLS["unseen_regions"]
    g = Geolocator.load(demo / "rfm", device="cpu")
    latlon, emb, ids, _ = read_arrays(path)
    latlon, emb, ids = latlon[:rows], emb[:rows], ids[:rows]
    subset = work / "unseen_regions_all.parquet"
    write_embeddings(subset, torch.from_numpy(latlon), torch.from_numpy(emb), ids=list(ids))
    u = density_dataset(g, EmbeddingDataset(subset), calibration_samples=samples, seed=seed, progress=False)["hpd_rank"]
    out = {str(p): {"before": [], "after": []} for p in (0.5, 0.9)}
    for k in range(splits):
        cal, test = halves(latlon, True, seed + 1000 + k)
        recal = Recalibration.fit(u[cal], data=str(path), samples_per_row=samples, weights_sha256="-")
        for p in (0.5, 0.9):
            out[str(p)]["before"].append(float(np.mean(u[test] <= p)))
            out[str(p)]["after"].append(float(np.mean(u[test] <= recal.level(p))))
    return {"splits": splits, "rows": int(u.size), "coverage": out}


def run(cmd: list[str]) -> None:
    print("$ globeflow " + " ".join(cmd), file=sys.stderr)
    if cli(cmd) != 0:
        raise SystemExit(f"globeflow {cmd[0]} failed")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--demo", default="runs/demo", help="globeflow demo's output folder")
    p.add_argument("--rows", type=int, default=1000, help="test rows per protocol (at most the demo's)")
    p.add_argument("--calibration-samples", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--splits", type=int, default=50, help="random block halvings for the repeated-split table")
    p.add_argument("--repeated-only", action="store_true", help="only the repeated-split table (no commands run)")
    p.add_argument("--out", default="bench_out/calibration.json")
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    demo = Path(a.demo)
    results = {}
    with tempfile.TemporaryDirectory(prefix="globeflow-calibration-") as tmp:
        work = Path(tmp)
        for protocol, name in PROTOCOLS.items():
            if a.repeated_only:
                break
            latlon, emb, ids, _ = read_arrays(demo / "data" / name)
            latlon, emb, ids = latlon[: a.rows], emb[: a.rows], ids[: a.rows]
            cal, test = halves(latlon, protocol == "unseen_regions", a.seed)
            paths = {}
            for part, rows in (("cal", cal), ("test", test)):
                paths[part] = work / f"{protocol}_{part}.parquet"
                write_embeddings(paths[part], torch.from_numpy(latlon[rows]), torch.from_numpy(emb[rows]),
                                 ids=[ids[i] for i in rows])
            new_run = work / f"{protocol}_calibrated"
            samples = str(a.calibration_samples)
            run(["calibrate", str(demo / "rfm"), str(paths["cal"]), "--out", str(new_run), "--calibration-samples",
                 samples, "--seed", str(a.seed), "--no-progress"])
            report_path = work / f"{protocol}_test_report.json"
            run(["evaluate", str(new_run), str(paths["test"]), "--out", str(report_path), "--calibration-samples",
                 samples, "--seed", str(a.seed + 1)])
            metrics = json.loads(report_path.read_text())["metrics"]
            before, after = metrics["calibration"], metrics["calibration"]["after_recalibration"]
            cal_report = json.loads((new_run / "calibration_report.json").read_text())
            results[protocol] = {
                "calibration_rows": int(cal.size), "test_rows": int(test.size),
                "blocks": protocol == "unseen_regions", "levels": before["levels"],
                "coverage_before": before["coverage"], "coverage_after": after["coverage"],
                "map_levels": after["map_levels"], "gap_before": before["mean_abs_gap"],
                "gap_after": after["mean_abs_gap"], "nll_test": metrics["nll"],
                "stderr": before["stderr"],
                "calibration_rows_coverage_before": cal_report["before"]["coverage"],
            }
        results["unseen_regions_repeated"] = repeated_splits(demo, work, a.rows, a.calibration_samples, a.splits,
                                                             a.seed)
    levels = (results.get("unseen_regions") or {}).get("levels", [])
    at = {p: levels.index(p) for p in (0.5, 0.9) if p in levels}
    lines = [f"Blue Marble demo model ({demo / 'rfm'}), calibrated on one half and tested on the other "
             f"({a.calibration_samples} samples with exact densities per row for each row's credible level).", "",
             "| protocol | halves | cal / test rows | p | coverage before | coverage after | model level used |",
             "|---|---|---|---|---|---|---|"]
    for protocol, r in results.items():
        if protocol not in PROTOCOLS:
            continue
        for p, i in at.items():
            lines.append(f"| {protocol} | {'by held-out block' if r['blocks'] else 'by row'} | "
                         f"{r['calibration_rows']} / {r['test_rows']} | {p} | {r['coverage_before'][i]:.3f} | "
                         f"{r['coverage_after'][i]:.3f} | {r['map_levels'][i]:.3f} |")
    lines += ["", "| protocol | mean calibration gap before (p = 0.1 ... 0.9) | after | test NLL (nats/sr, unchanged) |",
              "|---|---|---|---|"]
    for protocol, r in results.items():
        if protocol not in PROTOCOLS:
            continue
        lines.append(f"| {protocol} | {r['gap_before']:.3f} | {r['gap_after']:.3f} | {r['nll_test']:.3f} |")
    rep = results["unseen_regions_repeated"]
    lines += ["", f"Unseen regions over {rep['splits']} random halvings of the blocks ({rep['rows']} rows, ranks "
              "computed once): test-half coverage after recalibrating on the other half.", "",
              "| p | before: mean | after: mean | after: sd | after: min / max | splits within 0.05 of p |",
              "|---|---|---|---|---|---|"]
    for p, c in rep["coverage"].items():
        after = np.array(c["after"])
        within = float(np.mean(np.abs(after - float(p)) <= 0.05))
        lines.append(f"| {p} | {np.mean(c['before']):.3f} | {after.mean():.3f} | {after.std(ddof=1):.3f} | "
                     f"{after.min():.3f} / {after.max():.3f} | {within:.0%} |")
    table = "\n".join(lines)
    print(table)
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, json.dumps({"protocols": results, "markdown": table}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
