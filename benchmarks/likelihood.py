"""Likelihood benchmark on the known-answer task: exact NLL against the true entropy, and cost.

Uses the RFM model trained by ``benchmarks/known_answer.py`` (or trains it, with the demo config).
For each likelihood solver, on test points drawn from the true distribution:

- NLL (nats/sr) = -mean log q(x | embedding); the true conditional entropy is its lower bound
  (``NLL - H = KL(p || q) >= 0``). The gap is estimated on the same points as
  ``mean(log p(x) - log q(x))`` with the exact true ``log p``: the paired difference has a far smaller
  Monte Carlo error than NLL and H estimated separately, and it must be >= 0 up to that error;
- network evaluations per point batch and seconds per 1,000 points (a JVP counts as one evaluation);
- the normalisation error: total mass of the density on a HEALPix grid, for the broad class 1.

    python benchmarks/likelihood.py --out bench_out/likelihood.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from globeflow import geo
from globeflow.apps.demos.known_answer import DemoConfig, make_task_data
from globeflow.apps.tasks.known_answer import default_task
from globeflow.flow.likelihood import ModelField, log_prob_ode
from globeflow.geo import healpix as hp
from globeflow.inference import Geolocator
from globeflow.io import CHECKPOINT_NAME, atomic_write_text
from globeflow.train import train

SOLVERS = (("rk4", 8, None), ("rk4", 16, None), ("rk4", 32, None), ("dopri5", None, 1e-3), ("dopri5", None, 1e-5))


def run_solver(g: Geolocator, x: torch.Tensor, emb: torch.Tensor, method: str, steps: int | None,
               tol: float | None) -> tuple[torch.Tensor, int, float]:
    grid = g.model.schedule.sampling_grid(steps or 1)
    t0 = time.perf_counter()
    r = log_prob_ode(ModelField(g.model, emb), x, grid=grid, method=method,
                     rtol=tol or 1e-5, atol=tol or 1e-5)
    return r.log_prob.double(), r.nfe, time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="bench_out/likelihood.json")
    p.add_argument("--work", default="bench_out/known_answer")
    p.add_argument("--points", type=int, default=1000)
    p.add_argument("--nside", type=int, default=32)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--solvers", nargs="+", default=None,
                   help="subset, e.g. rk4:16 dopri5:1e-5 (default: all; the last one is the reference column)")
    a = p.parse_args(argv)
    solvers = SOLVERS
    if a.solvers:
        wanted = [tuple(x.split(":")) for x in a.solvers]
        solvers = tuple(s for s in SOLVERS if (s[0], str(s[1] if s[0] == "rk4" else f"{s[2]:g}")) in wanted)
    torch.set_num_threads(a.threads)
    task, cfg, work = default_task(), DemoConfig(), Path(a.work)
    run = work / "rfm"
    if not (run / CHECKPOINT_NAME).exists():
        train_path, _ = make_task_data(task, work / "data", cfg.train_rows, cfg.test_rows)
        train(train_path, run, network=dict(cfg.network), config=cfg.train)
    g = Geolocator.load(run, device="cpu")
    latlon, emb, labels = task.sample(a.points, generator=torch.Generator().manual_seed(7))
    x = geo.latlon_to_xyz(latlon).float()
    entropy = task.entropy()[labels].mean().item()
    true_lp = task.log_prob(x.double(), labels)
    cells = hp.cell_centers(a.nside, dtype=torch.float32)
    cell_emb = task.class_vectors()[1].expand(len(cells), -1)
    rows = []
    for method, steps, tol in solvers:
        lp, nfe, seconds = run_solver(g, x, emb, method, steps, tol)
        grid_lp, _, _ = run_solver(g, cells, cell_emb, method, steps, tol)
        mass = (grid_lp.exp() * hp.cell_area(a.nside)).sum().item()
        nll = -lp.mean().item()
        diff = true_lp - lp
        rows.append({"solver": method, "steps": steps, "tol": tol, "nll": nll, "gap": diff.mean().item(),
                     "gap_stderr": diff.std().item() / a.points ** 0.5,
                     "nfe": nfe, "seconds_per_1000": 1000 * seconds / a.points, "mass_class1": mass})
        print(rows[-1], file=sys.stderr)
    ref = rows[-1]["nll"]
    lines = [f"True conditional entropy of the test points: {entropy:.3f} nats/sr ({a.points} points).", "",
             "| solver | NLL (nats/sr) | NLL - H = mean(log p - log q) | vs last row | evaluations | s / 1000 points | mass (class 1, nside "
             f"{a.nside}) |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        name = f"rk4, {r['steps']} steps" if r["solver"] == "rk4" else f"dopri5, tol {r['tol']:g}"
        lines.append(f"| {name} | {r['nll']:.3f} | {r['gap']:+.3f} +- {r['gap_stderr']:.3f} | {r['nll'] - ref:+.3f} | {r['nfe']} | "
                     f"{r['seconds_per_1000']:.2f} | {r['mass_class1']:.4f} |")
    table = "\n".join(lines)
    print(table)
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(a.out, json.dumps({"entropy": entropy, "rows": rows, "markdown": table}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
