"""Question 2: what the guidance scale trades. For each flow model and ``w`` in the sweep: the GeoScore
of one guided sample per row (the published point recipe), the precision / recall / density /
coverage of those samples against the true locations (k = 3), and for RFM the NLL of the guided
density at the truth, whose normalisation is checked on the equal-area map."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from ... import geo
from ...evaluation.sets import prdc
from ...geo.distance import distances_km
from ...geo.distributions import vmf_log_prob, vmf_sample
from ...inference.density.kernel import kernel_widths
from .setup import FLOWS, Task, TestSet, Workspace
from .stats import geoscores, mean_se

__all__ = ["run_guidance", "importance_mass", "BEST", "UNIFORM_SHARE", "KERNEL_FACTOR"]

#: The proposal's uniform share (it keeps the estimator's variance finite where no kernel reaches).
UNIFORM_SHARE = 0.1
#: Samples per kernel disc of the proposal (see :func:`globeflow.inference.density.kernel.kernel_widths`).
KERNEL_FACTOR = 4.0

#: Each metric and whether larger is better: the best w per metric.
BEST = (("geoscore", True), ("precision", True), ("recall", True), ("density", True), ("coverage", True),
        ("nll", False))


def _sweep(ws: Workspace, task: Task, test: TestSet, kind: str) -> dict[str, Any]:
    g = ws.locator(task, kind)
    emb, truth = torch.as_tensor(test.emb), torch.as_tensor(test.latlon, dtype=torch.float64)
    rows = []
    for w in ws.config.guidance:
        pred = g.predict(emb, strategy="single", guidance=w, seed=ws.config.seed)
        gs, se = mean_se(geoscores(distances_km(pred, truth).numpy()))
        sets = prdc(pred.numpy(), test.latlon, k=3)
        row: dict[str, Any] = {"w": w, "geoscore": gs, "geoscore_se": se,
                               **{k: sets[k] for k in ("precision", "recall", "density", "coverage")}}
        if g.has_density:
            lp = g.log_prob(emb, truth, guidance=w, seed=ws.config.seed)
            row["nll"], row["nll_se"] = mean_se(-lp.numpy())
            rows_ = range(ws.config.mass_rows)
            row["mass_is"] = [importance_mass(g, emb[i:i + 1], w, ws.config.mass_samples, ws.config.mass_points,
                                              seed=ws.config.seed + i) for i in rows_]
            if ws.config.mass_map is not None:
                maps = g.density_maps(emb[:ws.config.mass_rows], ws.config.mass_map, guidance=w, seed=ws.config.seed)
                row["mass"] = [m.mass() for m in maps]
        rows.append(row)
    best = {}
    for metric, larger in BEST:
        values = [r.get(metric) for r in rows]
        if all(v is not None for v in values):
            i = int(np.argmax(values) if larger else np.argmin(values))
            best[metric] = rows[i]["w"]
    return {"rows": rows, "best_w": best}


def importance_mass(g: Any, emb: torch.Tensor, guidance: float, samples: int, points: int, *,
                    seed: int) -> tuple[float, float]:
    """The integral over the sphere of a model's guided density for one embedding ``(1, D)``, by
    importance sampling, and its standard error.

    The proposal is built from the density's own samples with their exact log-densities: a vMF kernel
    at each (the widths of :mod:`globeflow.inference.density.kernel`), plus a uniform share. It is
    unbiased whatever the proposal, so it does not depend on a grid's resolution: a guided density
    concentrated below a map cell's size is integrated as well as a broad one. 1 means normalised.
    """
    latlon, lp = g.sample_with_log_prob(emb, samples, guidance=guidance, seed=seed)
    centres = geo.latlon_to_xyz(latlon[0].double())
    kappa = torch.as_tensor(1.0 / kernel_widths(lp[0].numpy(), KERNEL_FACTOR) ** 2)
    gen = torch.Generator().manual_seed(seed)
    pick = torch.randint(samples, (points,), generator=gen)
    near = vmf_sample(centres[pick], kappa[pick], generator=gen)
    far = geo.uniform((points,), generator=gen, dtype=torch.float64)
    y = torch.where((torch.rand(points, generator=gen, dtype=torch.float64) < UNIFORM_SHARE)[:, None], far, near)
    kernels = torch.logsumexp(vmf_log_prob(y[:, None, :], centres[None], kappa[None]), dim=1) - math.log(samples)
    log_q = torch.logaddexp(torch.full_like(kernels, math.log(UNIFORM_SHARE / (4 * math.pi))),
                            math.log(1 - UNIFORM_SHARE) + kernels)
    log_p = g.log_prob(emb.expand(points, -1), geo.xyz_to_latlon(y), guidance=guidance, seed=seed)
    ratio = torch.exp(log_p - log_q).numpy()
    return float(ratio.mean()), float(ratio.std(ddof=1) / math.sqrt(points))


def run_guidance(ws: Workspace) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for task in ws.tasks:
        for test in task.tests:
            out[test.key] = {"title": test.title, "n": len(test.latlon), "models": {
                kind: ws.cached(f"guidance/{test.task}-{test.name}-{kind}",
                                lambda kind=kind, task=task, test=test: _sweep(ws, task, test, kind))
                for kind in FLOWS}}
    return {"splits": out, "w": list(ws.config.guidance)}
