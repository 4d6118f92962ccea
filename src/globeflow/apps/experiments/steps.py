"""Question 5: how the number of solver steps trades accuracy for time. On the known-answer task,
whose density is known, for each flow model and solver: the density gap of its samples (their mean
true log-density minus the true ``-H``; 0 is perfect), how far each sample lands from the same
noise's converged sample (the 250-step solve of the most accurate solver), and the time."""

from __future__ import annotations

import time
from typing import Any

import torch

from ... import geo
from ...flow.sampling import SamplerConfig
from ...geo.distance import haversine_km
from .setup import FLOWS, Workspace
from .stats import mean_se

__all__ = ["run_steps", "SOLVERS", "STAGES"]

#: Solvers per model kind, the most accurate last (its longest solve is the reference).
SOLVERS = {"rfm": ("euler", "midpoint", "rk4"), "fm": ("euler", "midpoint", "rk4"), "diffusion": ("ddim",)}
#: Network evaluations per step.
STAGES = {"euler": 1, "midpoint": 2, "rk4": 4, "ddim": 1}


def _model(ws: Workspace, kind: str) -> dict[str, Any]:
    task = ws.tasks[0]  # the known-answer task
    kt = ws.known_answer_task
    model = ws.locator(task, kind).model
    emb, n = kt.class_vectors(), ws.config.density_samples
    labels = torch.arange(kt.num_classes)
    x0 = model.path.prior((kt.num_classes, n), generator=torch.Generator().manual_seed(ws.config.seed))
    entropy = ws.entropy()

    def draw(method: str, steps: int) -> tuple[torch.Tensor, float]:
        t0 = time.perf_counter()
        xyz = model.sample(emb, n, SamplerConfig(method=method, steps=steps), x_init=x0)
        return xyz, time.perf_counter() - t0

    reference, _ = draw(SOLVERS[kind][-1], max(ws.config.steps))
    ref_ll = geo.xyz_to_latlon(reference.double())
    ref_lp = kt.log_prob(reference.double(), labels)
    rows = []
    for method in SOLVERS[kind]:
        for steps in ws.config.steps:
            xyz, seconds = draw(method, steps)
            lp = kt.log_prob(xyz.double(), labels)
            km = haversine_km(geo.xyz_to_latlon(xyz.double()), ref_ll)
            # Paired with the reference sample of the same noise: the Monte Carlo noise of the gap
            # itself (shared by both) cancels, so a step count's own error is measurable.
            diff, diff_se = mean_se((lp - ref_lp).flatten().numpy())
            rows.append({"method": method, "steps": steps, "evaluations": steps * STAGES[method],
                         "gap_nats": float((lp.mean(dim=1) + entropy).mean()), "minus_converged": diff,
                         "minus_converged_se": diff_se, "km_from_converged": float(km.mean()),
                         "seconds_per_1000": 1000 * seconds / (n * kt.num_classes)})
    return {"reference": f"{SOLVERS[kind][-1]} {max(ws.config.steps)} steps", "rows": rows}


def run_steps(ws: Workspace) -> dict[str, Any]:
    return {"models": {kind: ws.cached(f"steps/{kind}", lambda kind=kind: _model(ws, kind)) for kind in FLOWS},
            "samples": ws.config.density_samples * ws.known_answer_task.num_classes}
