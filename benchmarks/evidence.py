"""Fusing photos of one place, and exactness of the fusion (issue 17).

1. **Exactness** on the known-answer task, free of any model's error: the task's true densities
   behind the Locator interface (:class:`globeflow.apps.tasks.true_locator.TrueLocator`), n rows
   fused on the coarse-to-fine map, against the product formula applied to the true densities and
   renormalised on a fine equal-area grid (nside 256): mean absolute error (nats) on the fused map's
   1,000 densest cells.
2. **Benefit** on Blue Marble with the ``globeflow demo`` model: for each protocol (random split,
   unseen regions) and n in (2, 4, 8), groups of n patches whose centres lie uniformly within 50 km of
   a test point (cropped from the Blue Marble image and embedded like the demo's patches). For each
   group: GeoScore of the fused best guess at the group's point and the fused density's exact NLL
   there, against the mean over the group's single patches (each patch's own best guess, its own
   exact NLL at the point), and the seconds per fused answer. The photos' redundancy ``rho``
   (``--redundancy``: 0 is the product formula) is fitted on separate groups around random-split
   points that the report does not use; every group's numbers for ``rho = 0`` and the fitted
   ``rho`` are read from one map refined for the product formula, which holds every photo's exact
   log-density at each cell.

    globeflow demo                                     # once: runs/demo
    python benchmarks/evidence.py --demo runs/demo --out bench_out/evidence.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from globeflow import geo
from globeflow.apps.demos.blue_marble import BlueMarbleDemoConfig
from globeflow.apps.tasks.blue_marble import patches_for
from globeflow.apps.tasks.known_answer import default_task
from globeflow.apps.tasks.true_locator import TrueLocator
from globeflow.evaluation.baselines import read_arrays
from globeflow.geo import healpix
from globeflow.inference import Geolocator
from globeflow.inference.answers import AnswerConfig
from globeflow.inference.density import MapConfig
from globeflow.inference.density import DensityMap
from globeflow.inference.evidence import fused_map, pool_weights, sample_map
from globeflow.inference.points import best_expected_geoscore
from globeflow.io import atomic_write_text

PROTOCOLS = {"random": "test_random.parquet", "unseen_regions": "test_unseen.parquet"}


def exactness(sizes: tuple[int, ...], fine_nside: int = 256, top: int = 1000) -> list[dict]:
    """MAE (nats) of the fused map's densest cells against the product formula on a fine grid."""
    task = default_task()
    loc = TrueLocator(task)
    vectors = task.class_vectors()
    gen = torch.Generator().manual_seed(0)
    xyz = np.stack(healpix.pix2vec(fine_nside, np.arange(healpix.num_cells(fine_nside)), nest=True), -1)
    rows = []
    for cls in range(task.num_classes):
        for n in sizes:
            emb = vectors[cls] + task.noise * torch.randn(n, task.embed_dim, generator=gen)
            config = AnswerConfig(map=MapConfig(nside=64))
            t0 = time.perf_counter()
            dmap, _, _ = fused_map(loc, emb, config)
            seconds = time.perf_counter() - t0
            cond = torch.cat((emb, loc.unconditional_embedding()))

            def product(points: np.ndarray) -> np.ndarray:
                out = []
                for part in np.array_split(points, max(1, len(points) // 20000)):  # bounded temporaries
                    v = loc._log_density(torch.from_numpy(np.broadcast_to(part, (n + 1, *part.shape)).copy()), cond)
                    out.append((v[:n].sum(0) - (n - 1) * v[n]).numpy())
                return np.concatenate(out)

            raw = product(xyz)
            log_z = float(torch.logsumexp(torch.from_numpy(raw), 0)) + math.log(4 * math.pi / len(xyz))
            cells = np.argsort(-dmap.log_density, kind="stable")[:top]
            ref = product(np.stack(healpix.pix2vec(64, cells, nest=True), -1)) - log_z
            err = np.abs(dmap.log_density[cells] - ref)
            rows.append({"class": cls, "n": n, "mae_nats": float(err.mean()), "max_nats": float(err.max()),
                         "mass": dmap.mass(), "seconds": seconds})
    return rows


def _offsets(centre: np.ndarray, n: int, radius_km: float, rng: np.random.Generator) -> np.ndarray:
    """``n`` points uniform in the disc of ``radius_km`` around ``centre (2,)`` degrees."""
    d = radius_km * np.sqrt(rng.uniform(size=n)) / geo.EARTH_RADIUS_KM
    bearing = rng.uniform(0, 2 * np.pi, size=n)
    la, lo = np.radians(centre)
    lat = np.arcsin(np.sin(la) * np.cos(d) + np.cos(la) * np.sin(d) * np.cos(bearing))
    lon = lo + np.arctan2(np.sin(bearing) * np.sin(d) * np.cos(la), np.cos(d) - np.sin(la) * np.sin(lat))
    return np.stack((np.degrees(lat), (np.degrees(lon) + 180) % 360 - 180), axis=1)


def _geoscore(pred: np.ndarray, truth: np.ndarray) -> np.ndarray:
    d = geo.haversine_km(torch.as_tensor(pred, dtype=torch.float64), torch.as_tensor(truth, dtype=torch.float64))
    return geo.geoscore(d).numpy()


#: Redundancies evaluated on every fit group (0: the product formula; 1: the geometric mean).
REDUNDANCIES = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8, 1.0)


def _group(g: Geolocator, encoder, centres: np.ndarray, n: int, radius_km: float, rng: np.random.Generator,
           config: AnswerConfig, seed: int, redundancies: tuple[float, ...]) -> dict:
    """One group: its single patches' scores, and the fused answer's for every redundancy, all read
    from one map refined for the product formula (each cell holds every photo's exact log-density)."""
    point = centres[rng.integers(len(centres))]
    where = _offsets(point, n, radius_km, rng)
    patches = patches_for(where, BlueMarbleDemoConfig().task)
    emb = encoder.embed(encoder.preprocess([Image.fromarray(p) for p in patches])).float().numpy()
    truth = np.repeat(point[None], n, axis=0)
    best = g.predict(emb, num_samples=32, seed=seed).numpy()
    out = {"single_geoscore": float(_geoscore(best, truth).mean()),
           "single_nll": float(-g.log_prob(emb, truth, steps=16).mean())}
    t0 = time.perf_counter()
    fused, components, _ = fused_map(g, emb, config, seed=seed)  # the product formula's map
    cond = np.concatenate((emb, g.unconditional_embedding().numpy()))
    at_truth = g.log_prob(cond, np.repeat(point[None], n + 1, axis=0), steps=config.steps, method="rk4",
                          seed=seed).numpy()
    out["seconds"] = time.perf_counter() - t0
    for w in redundancies:
        coef = pool_weights(n, w)
        raw = components @ coef
        log_z = float(torch.logsumexp(torch.from_numpy(raw), 0)) + math.log(fused.cell_area)
        dmap = DensityMap(raw - log_z, fused.evaluated_nside)
        ll, _ = sample_map(dmap, config.num_samples, np.random.default_rng(seed))
        guess = geo.xyz_to_latlon(best_expected_geoscore(geo.latlon_to_xyz(torch.from_numpy(ll))[None]))[0]
        out[f"rho={w:.3g}"] = {"geoscore": float(_geoscore(guess.numpy()[None], point[None])[0]),
                             "nll": float(-(at_truth @ coef - log_z)),
                             "credible_level": float(dmap.level_of(point[None])[0])}
    return out


def benefit(demo: Path, sizes: tuple[int, ...], groups: int, fit_groups: int, radius_km: float,
            config: AnswerConfig, seed: int) -> dict:
    """Fit the photos' redundancy on groups around random-split points kept apart (the best mean NLL
    over every size), then report both protocols with the product formula (rho = 0) and the fit."""
    g = Geolocator.load(demo / "rfm", device="cpu")
    encoder = g.image_encoder()
    rng = np.random.default_rng(seed)
    data = {protocol: read_arrays(demo / "data" / name)[0] for protocol, name in PROTOCOLS.items()}
    # The random split's test points: half for fitting the redundancy, half for the report.
    order = rng.permutation(len(data["random"]))
    fit_points, data["random"] = data["random"][order[: len(order) // 2]], data["random"][order[len(order) // 2:]]
    fit = {}
    for n in sizes:
        rows = [_group(g, encoder, fit_points, n, radius_km, rng, config, 10_000 + k, REDUNDANCIES)
                for k in range(fit_groups)]
        fit[n] = {f"{r:.3g}": float(np.mean([row[f"rho={r:.3g}"]["nll"] for row in rows])) for r in REDUNDANCIES}
        print(f"  fit n={n}: mean NLL by redundancy {fit[n]}", file=sys.stderr)
    chosen = min(REDUNDANCIES, key=lambda r: sum(fit[n][f"{r:.3g}"] for n in sizes))
    keys = ("rho=0", f"rho={chosen:.3g}")
    report = []
    for protocol, centres in data.items():
        for n in sizes:
            rows = []
            for k in range(groups):
                rows.append(_group(g, encoder, centres, n, radius_km, rng, config, k, (0.0, chosen)))
                r = rows[-1]
                print(f"  {protocol} n={n} group {k + 1}/{groups}: GeoScore {r['single_geoscore']:.0f} -> "
                      f"{r[keys[0]]['geoscore']:.0f} / {r[keys[1]]['geoscore']:.0f} (rho={chosen:g}); "
                      f"NLL {r['single_nll']:.2f} -> {r[keys[0]]['nll']:.2f} / {r[keys[1]]['nll']:.2f} "
                      f"({r['seconds']:.0f} s)", file=sys.stderr)
            se = lambda v: float(np.std(v, ddof=1) / math.sqrt(len(v)))  # noqa: E731
            row = {"protocol": protocol, "n": n, "groups": groups,
                   "single_geoscore": float(np.mean([r["single_geoscore"] for r in rows])),
                   "single_nll": float(np.mean([r["single_nll"] for r in rows])),
                   "seconds_per_group": float(np.mean([r["seconds"] for r in rows]))}
            for key in keys:
                gs = [r[key]["geoscore"] - r["single_geoscore"] for r in rows]
                nll = [r[key]["nll"] - r["single_nll"] for r in rows]
                row[key] = {"geoscore": float(np.mean([r[key]["geoscore"] for r in rows])), "geoscore_gain_se": se(gs),
                            "nll": float(np.mean([r[key]["nll"] for r in rows])), "nll_gain_se": se(nll),
                            "coverage_90": float(np.mean([r[key]["credible_level"] < 0.9 for r in rows]))}
            report.append(row)
    return {"fit": {str(n): v for n, v in fit.items()}, "chosen_redundancy": chosen, "report": report}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--demo", type=Path, default=Path("runs/demo"))
    p.add_argument("--out", type=Path, default=Path("bench_out/evidence.json"))
    p.add_argument("--sizes", default="2,4,8")
    p.add_argument("--groups", type=int, default=6, help="groups per protocol and size")
    p.add_argument("--fit-groups", type=int, default=3, help="groups per size that fit the photos' redundancy")
    p.add_argument("--radius-km", type=float, default=50.0)
    p.add_argument("--nside", type=int, default=32)
    p.add_argument("--steps", type=int, default=8, help="RK4 steps of every likelihood solve")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--skip-exactness", action="store_true")
    p.add_argument("--skip-benefit", action="store_true")
    a = p.parse_args()
    torch.set_num_threads(2)
    sizes = tuple(int(s) for s in a.sizes.split(","))
    out: dict = {"settings": vars(a) | {"demo": str(a.demo), "out": str(a.out)}}
    if not a.skip_exactness:
        out["exactness"] = exactness(sizes)
        print("| class | n | MAE on 1,000 densest cells (nats) | max | mass | s |\n|---|---|---|---|---|---|")
        for r in out["exactness"]:
            print(f"| {r['class']} | {r['n']} | {r['mae_nats']:.2e} | {r['max_nats']:.2e} | {r['mass']:.6f} | "
                  f"{r['seconds']:.2f} |")
    if not a.skip_benefit:
        config = AnswerConfig(num_samples=128, solver="rk4", steps=a.steps, error_check=0, top_k=3,
                              map=MapConfig(nside=a.nside, max_cells=64, exact_top=200))
        out["answer_config"] = dataclasses.asdict(config)
        out["benefit"] = benefit(a.demo, sizes, a.groups, a.fit_groups, a.radius_km, config, a.seed)
        w = out["benefit"]["chosen_redundancy"]
        print(f"\nfitted redundancy: {w:g} (mean NLL over the fit groups by redundancy: {out['benefit']['fit']})")
        print(f"\n| protocol | n | groups | GeoScore single | fused rho=0 | fused rho={w:g} | NLL single | fused rho=0 | "
              f"fused rho={w:g} | s per group |\n|---|---|---|---|---|---|---|---|---|---|")
        for r in out["benefit"]["report"]:
            a1, aw = r["rho=0"], r[f"rho={w:.3g}"]
            print(f"| {r['protocol']} | {r['n']} | {r['groups']} | {r['single_geoscore']:.0f} | "
                  f"{a1['geoscore']:.0f} ({a1['geoscore_gain_se']:.0f}) | {aw['geoscore']:.0f} ({aw['geoscore_gain_se']:.0f}) | "
                  f"{r['single_nll']:.2f} | {a1['nll']:.2f} ({a1['nll_gain_se']:.2f}) | {aw['nll']:.2f} "
                  f"({aw['nll_gain_se']:.2f}) | {r['seconds_per_group']:.0f} |")
    a.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(a.out, json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
