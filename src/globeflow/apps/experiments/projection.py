"""Question 3: what the projection onto the sphere does for the R^3 models. Samples used as they
land (the states move freely in R^3; one projection at the end, for the distance) against samples
projected onto the sphere after every step; and how far off the sphere the free samples end."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ... import geo
from ...geo.distance import EARTH_RADIUS_KM, distances_km
from ...inference.points import best_expected_geoscore
from .setup import Task, TestSet, Workspace
from .stats import geoscores, mean_se

__all__ = ["run_projection", "MODES", "R3_FLOWS"]

#: The two ways of sampling compared, and the sampler step that makes each.
MODES = {"as they land": "exp", "projected every step": "retraction"}
R3_FLOWS = ("fm", "diffusion")
#: Levels at which the distribution of the free samples' distance from the sphere is kept.
QUANTILES = (0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99)


def _cell(ws: Workspace, task: Task, test: TestSet, kind: str, mode: str) -> dict[str, Any]:
    g = ws.locator(task, kind)
    sampler = g.sampler(step=MODES[mode])
    last: list[torch.Tensor] = []

    def keep_last(i: int, gamma: torch.Tensor, x: torch.Tensor) -> None:
        if i == sampler.steps - 1:
            last.append(x.detach().reshape(-1, 3))

    emb = torch.as_tensor(test.emb, dtype=torch.float32)
    xyz = g.model.sample(emb, ws.config.projection_samples, sampler,
                         generator=torch.Generator().manual_seed(ws.config.seed), callback=keep_last)
    off = (torch.cat(last).norm(dim=-1) - 1).abs().double().numpy()
    truth = torch.as_tensor(test.latlon, dtype=torch.float64)
    best = geo.xyz_to_latlon(best_expected_geoscore(xyz.double()))
    err = distances_km(best, truth).numpy()
    gs, se = mean_se(geoscores(err))
    each = distances_km(geo.xyz_to_latlon(xyz.double()).reshape(-1, 2),
                        truth.repeat_interleave(xyz.shape[1], dim=0)).numpy()
    return {"geoscore": gs, "geoscore_se": se, "median_km": float(np.median(err)),
            "sample_median_km": float(np.median(each)), "geoscores": geoscores(err).tolist(),
            "off_sphere_mean": float(off.mean()), "off_sphere_p95": float(np.quantile(off, 0.95)),
            "off_sphere_max": float(off.max()),
            "off_sphere_quantiles": {str(q): float(np.quantile(off, q)) for q in QUANTILES}, "off_sphere_mean_km": float(off.mean() * EARTH_RADIUS_KM),
            "sampler": f"{sampler.method} {sampler.steps} steps"}


def run_projection(ws: Workspace) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for task in ws.tasks:
        for test in task.tests:
            out[test.key] = {"title": test.title, "models": {kind: {
                mode: ws.cached(f"projection/{test.task}-{test.name}-{kind}-{MODES[mode]}",
                                lambda kind=kind, mode=mode, task=task, test=test: _cell(ws, task, test, kind, mode))
                for mode in MODES} for kind in R3_FLOWS}}
    return {"splits": out}
