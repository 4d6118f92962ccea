"""Cost and accuracy of a full answer and of a best guess, against the published sampler, side by side.

For each model size (the demo size, dim 256 / depth 6, trained with the default ``TrainConfig`` on the
known-answer task; the published size, dim 512 / depth 12, briefly trained on the same task) and each
chosen class of the task (class 2 is the two-mode class whose nside-64 map failed before: a mass of
1.090 and cells 1-26 nats off with RK4-16), one run measures on the same weights and one thread:

- **published**: the published package's sampler (``diff-plonk`` 0.4, ``--no-deps``; see
  ``benchmarks/published_sampler.py``) drawing 256 samples with 250 Euler steps for the image, the
  published network holding the trained weights;
- **full answer**: :meth:`Geolocator.answer` with ``AnswerConfig()`` (best guess, top places with
  their within-radius probabilities, countries / regions / cities, 50/90/95% credible regions,
  localizability, the nside-64 map), and the same with the previous default (RK4-16 everywhere);
- **best guess**: ``Geolocator.predict`` with ``globeflow predict``'s defaults, and its distance to
  the best guess of 1,024 samples with RK4-32 (a converged reference of the same estimator).

Accuracy against a converged reference (adaptive Dormand-Prince at ``--ref-tol``, on the map's
``--ref-cells`` densest cells and on the answer's samples): the largest and mean absolute error in
nats, with the answer's own error estimate beside it, and the map's total mass.
Targets (issue 15): full answer <= 0.5 and best guess <= 0.1 of the published draw; mass 1 +/- 1%;
densest-cell error <= 0.05 nats. Prints a Markdown table and writes JSON.

    python benchmarks/answers.py --work bench_work --out bench_out/answers.json
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from density import trained  # benchmarks/density.py: the cached known-answer runs
from published_sampler import DEFAULT_SITE, import_published, published_run

from globeflow import geo
from globeflow.geo.places import country_codes as places_country_codes
from globeflow.apps.tasks.known_answer import default_task
from globeflow.inference import Geolocator
from globeflow.inference.answers import AnswerConfig
from globeflow.inference.density import MapConfig, hpd_region
from globeflow.inference.points import best_expected_geoscore
from globeflow.io import atomic_write_text
from globeflow.train import TrainConfig

SIZES = {
    "demo size (dim 256, depth 6)": ("rfm256", dict(dim=256, depth=6), TrainConfig()),
    "published size (dim 512, depth 12)": ("rfm512", dict(dim=512, depth=12),
                                           TrainConfig(steps=800, batch_size=256, val_every=400, ckpt_every=400)),
}
#: The answer settings before issue 15: RK4 with 16 steps on every level of the map and for the samples.
PREVIOUS = AnswerConfig(solver="rk4")
#: The fast full answer: 256 samples with RK4-8 exact densities, the map estimated from them (no solve
#: on the grid), its error measured on the 8 densest samples against RK4-32.
FAST = AnswerConfig(solver="rk4", steps=8, error_check=8, map=MapConfig(source="samples"))


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def published_seconds(pub, g: Geolocator, emb: torch.Tensor) -> float:
    """One published 256 x 250-step Euler draw for the image, with the published network holding g's weights."""
    cfg = g.config.network
    net = pub.Plonk(input_dim=3, dim=cfg.dim, depth=cfg.depth, expansion=cfg.expansion, cond_dim=cfg.cond_dim).eval()
    # The published network keeps its time frequencies as a buffer; globeflow computes them (the same
    # "published" variant: checked by benchmarks/published_sampler.py and tests/test_plonk_fixture.py).
    missing, unexpected = net.load_state_dict(g.model.network.state_dict(), strict=False)
    assert set(missing) <= {"time_embedder.encode_time.freqs"} and not unexpected, (missing, unexpected)
    x0 = geo.uniform((1, 256), generator=torch.Generator().manual_seed(0))
    _, seconds = timed(lambda: published_run(pub, net, emb, x0, 250, 0.0))
    return seconds


def map_errors(g: Geolocator, emb: torch.Tensor, answer, cells: int, tol: float) -> dict:
    dmap = answer.density_map
    top = np.argsort(-dmap.log_density, kind="stable")[:cells]
    pts = dmap.centers_latlon(top)
    ref_cells = g.log_prob(emb.expand(len(top), -1), pts, method="dopri5", rtol=tol, atol=tol).numpy()
    ref_samples = g.log_prob(emb.expand(len(answer.log_probs), -1), answer.samples, method="dopri5", rtol=tol,
                             atol=tol).numpy()
    cell_err = np.abs(dmap.log_density[top] - ref_cells)
    sample_err = np.abs(answer.log_probs - ref_samples)
    return {"mass": dmap.mass(), "cells_max_err": float(cell_err.max()), "cells_mean_err": float(cell_err.mean()),
            "samples_max_err": float(sample_err.max()), "samples_mean_err": float(sample_err.mean()),
            "estimate_cells": answer.map.get("densest_cells_error_nats"),
            "estimate_samples": answer.map.get("samples_error_nats"), "exact_cells": answer.map["exact_cells"],
            "warnings": list(answer.warnings or ())}


def fast_accuracy(g: Geolocator, emb: torch.Tensor, answer, samples: int, densest: int, tol: float) -> dict:
    """How far the fast answer's numbers are from those of ``samples`` independent samples with RK4-16
    densities (areas by the same importance-sampling estimator, places and countries by the samples'
    shares, localizability by their mean log-density), and its densest samples' error against dopri5."""
    ll, lp = g.sample_with_log_prob(emb, samples, steps=16, seed=12345, method="rk4")
    ll, lp = ll[0].numpy(), lp[0].numpy().astype(np.float64)
    ref_xyz = geo.latlon_to_xyz(torch.as_tensor(ll, dtype=torch.float64))
    areas = {f"{r.level:g}": r.area_km2 / (hpd_region(lp, r.level)[1] * geo.EARTH_RADIUS_KM ** 2)
             for r in answer.credible_regions}
    places = []
    for p in answer.top_k:
        c = geo.latlon_to_xyz(torch.tensor([p.lat, p.lon], dtype=torch.float64))
        km = torch.arccos((ref_xyz @ c).clamp(-1, 1)) * geo.EARTH_RADIUS_KM
        places += [abs(v - float((km <= float(r)).double().mean())) for r, v in p.within_km.items()]
    codes = np.asarray(places_country_codes(ll))
    countries = [abs(c.probability - float(np.mean(codes == c.country_code))) for c in answer.countries[:5]]
    bits = (-geo.LOG_UNIFORM + lp.mean()) / np.log(2.0)
    best = np.argsort(-answer.log_probs, kind="stable")[:densest]
    ref = g.log_prob(emb.expand(densest, -1), answer.samples[best], method="dopri5", rtol=tol, atol=tol).numpy()
    return {"area_ratio": areas, "places_max_abs_diff": max(places, default=0.0),
            "countries_max_abs_diff": max(countries, default=0.0),
            "localizability_bits": answer.localizability.bits, "reference_bits": float(bits),
            "densest_samples_max_err": float(np.abs(answer.log_probs[best] - ref).max()),
            "estimate_samples": answer.map.get("samples_error_nats"), "mass": answer.density_map.mass(),
            "warnings": list(answer.warnings or ())}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--work", default="bench_work", help="cache of the known-answer data and trained runs")
    p.add_argument("--sizes", nargs="+", default=list(SIZES), choices=list(SIZES))
    p.add_argument("--classes", type=int, nargs="+", default=[2])
    p.add_argument("--guess-only", nargs="*", default=[], choices=list(SIZES),
                   help="sizes measured for the published draw and the best guess only (no full answer)")
    p.add_argument("--ref-cells", type=int, default=1000)
    p.add_argument("--ref-tol", type=float, default=1e-6)
    p.add_argument("--skip-previous", action="store_true", help="skip the RK4-16 answer (the slowest row)")
    p.add_argument("--skip-exact", nargs="*", default=[], choices=list(SIZES),
                   help="sizes measured without the exact-map answers (minutes to hours at the published size)")
    p.add_argument("--reference-samples", type=int, default=2048,
                   help="independent RK4-16 samples the fast answer is compared with")
    p.add_argument("--reference-densest", type=int, default=32,
                   help="the fast answer's densest samples re-solved with dopri5 at --ref-tol")
    p.add_argument("--plonk-site", default=DEFAULT_SITE)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default="bench_out/answers.json")
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    links = Path(tempfile.mkdtemp(prefix="globeflow-plonk-links-"))
    pub = import_published(Path(a.plonk_site), links)
    task = default_task()
    vectors = task.class_vectors()
    rows = []
    for size in a.sizes:
        name, network, config = SIZES[size]
        g = trained(Path(a.work), name, network, config)
        for c in a.classes:
            emb = vectors[c:c + 1].float()
            row = {"size": size, "class": c, "parameters": g.model.network.num_parameters()}
            row["published_s"] = published_seconds(pub, g, emb)
            if size not in a.guess_only:
                g.answer(emb, config=replace(FAST, num_samples=4, error_check=0))  # load the place tables first
                fast, row["fast_s"] = timed(lambda: g.answer(emb, config=FAST)[0])
                row["fast_ratio"] = row["fast_s"] / row["published_s"]
                row["fast"] = fast_accuracy(g, emb, fast, a.reference_samples, a.reference_densest, a.ref_tol)
            if size not in a.guess_only and size not in a.skip_exact:
                answer, row["full_s"] = timed(lambda: g.answer(emb, config=AnswerConfig())[0])
                row["full"] = map_errors(g, emb, answer, a.ref_cells, a.ref_tol)
                row["full_ratio"] = row["full_s"] / row["published_s"]
            if size not in a.guess_only and size not in a.skip_exact and not a.skip_previous:
                old, row["previous_s"] = timed(lambda: g.answer(emb, config=PREVIOUS)[0])
                row["previous"] = map_errors(g, emb, old, a.ref_cells, a.ref_tol)
            guess, row["guess_s"] = timed(lambda: g.predict(emb))
            ref = geo.xyz_to_latlon(best_expected_geoscore(g.sample_xyz(emb, 1024, steps=32, seed=9).double()))
            row["guess_vs_reference_km"] = float(geo.haversine_km(guess[0].double(), ref[0].double()))
            row["guess_ratio"] = row["guess_s"] / row["published_s"]
            rows.append(row)
            print(json.dumps(row), file=sys.stderr)
    lines = [f"Known-answer task, one image per row, {a.threads} CPU thread(s); reference: dopri5 at "
             f"{a.ref_tol:g} on the {a.ref_cells} densest cells and on the answer's samples.", "",
             "| model | class | published 256 x 250 Euler (s) | full answer (s) | ratio | best guess (s) | ratio | "
             "map mass | densest cells: max / mean error (nats) | samples: max error | error estimate "
             "(cells / samples) |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if "full" not in r and "fast" in r:
            lines.append(f"| {r['size']} | {r['class']} | {r['published_s']:.1f} | exact map not measured | | "
                         f"{r['guess_s']:.2f} | {r['guess_ratio']:.3f} | | | | |")
            continue
        if "full" not in r:
            lines.append(f"| {r['size']} | {r['class']} | {r['published_s']:.1f} | not measured | | "
                         f"{r['guess_s']:.2f} | {r['guess_ratio']:.3f} | | | | |")
            continue
        f = r["full"]
        est = "/".join("-" if v is None else f"{v:.3f}" for v in (f["estimate_cells"], f["estimate_samples"]))
        lines.append(f"| {r['size']} | {r['class']} | {r['published_s']:.1f} | {r['full_s']:.1f} | "
                     f"{r['full_ratio']:.2f} | {r['guess_s']:.2f} | {r['guess_ratio']:.3f} | {f['mass']:.4f} | "
                     f"{f['cells_max_err']:.3f} / {f['cells_mean_err']:.4f} | {f['samples_max_err']:.3f} | {est} |")
        if "previous" in r:
            o = r["previous"]
            lines.append(f"| {r['size']}, previous (RK4-16) | {r['class']} | | {r['previous_s']:.1f} | "
                         f"{r['previous_s'] / r['published_s']:.2f} | | | {o['mass']:.4f} | "
                         f"{o['cells_max_err']:.3f} / {o['cells_mean_err']:.4f} | {o['samples_max_err']:.3f} | - |")
    lines += ["", f"Fast full answer ({FAST.num_samples} samples, RK4-{FAST.steps} densities, the map estimated "
              f"from the samples), against {a.reference_samples} independent RK4-16 samples; its "
              f"{a.reference_densest} densest samples against dopri5 at {a.ref_tol:g}.", "",
              "| model | class | published (s) | fast answer (s) | ratio | area ratio 50/90/95% | places: max abs "
              "diff | countries: max abs diff | localizability bits (reference) | densest samples: max error "
              "(own estimate) | mass |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if "fast" not in r:
            continue
        f = r["fast"]
        ratios = "/".join(f"{v:.2f}" for v in f["area_ratio"].values())
        lines.append(f"| {r['size']} | {r['class']} | {r['published_s']:.1f} | {r['fast_s']:.2f} | "
                     f"{r['fast_ratio']:.2f} | {ratios} | {f['places_max_abs_diff']:.3f} | "
                     f"{f['countries_max_abs_diff']:.3f} | {f['localizability_bits']:.2f} ({f['reference_bits']:.2f}) | "
                     f"{f['densest_samples_max_err']:.3f} ({f['estimate_samples']:.3f}) | {f['mass']:.4f} |")
    lines += ["", "| model | class | best guess vs 1,024-sample RK4-32 best guess (km) |", "|---|---|---|"]
    lines += [f"| {r['size']} | {r['class']} | {r['guess_vs_reference_km']:.1f} |" for r in rows]
    table = "\n".join(lines)
    print(table)
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, json.dumps({"rows": rows, "markdown": table, "ref_tol": a.ref_tol}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
