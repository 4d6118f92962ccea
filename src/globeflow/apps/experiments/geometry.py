"""Question 1: does modelling the sphere help, and where? RFM on S^2 against flow matching and
diffusion in R^3, the same network and training budget, on every test split; on the known-answer
task also per class (poles, the antimeridian, multi-modal classes), against the truth."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ... import geo
from .setup import FLOWS, Task, TestSet, Workspace
from .stats import geoscores, mean_se, paired

__all__ = ["run_geometry", "CLASS_NOTES"]

#: What each known-answer class tests (see ``default_task``).
CLASS_NOTES = ("one tight mode (Paris)", "one continent-wide mode", "two distant modes", "three unequal modes",
               "four medium modes", "across the north pole", "across the antimeridian", "broad + tight")


def _row(ev: dict[str, Any]) -> dict[str, Any]:
    m = ev["metrics"]
    gs, se = mean_se(geoscores(ev["errors_km"]))
    nll_se = mean_se(-np.asarray(ev["log_prob"]))[1] if ev.get("log_prob") is not None else None
    return {"geoscore": gs, "geoscore_se": se, "median_km": m["median_km"], "nll": m["nll"], "nll_se": nll_se,
            "precision": m.get("precision_k3"), "recall": m.get("recall_k3"), "density": m.get("density_k3"),
            "coverage": m.get("coverage_k3"), "calibration_gap": m["calibration"].get("mean_abs_gap"),
            "seconds": ev["seconds"]}


def _split(ws: Workspace, task: Task, test: TestSet) -> dict[str, Any]:
    evs = {kind: ws.evaluation(task, test, kind) for kind in FLOWS}
    scores = {kind: geoscores(ev["errors_km"]) for kind, ev in evs.items()}
    out: dict[str, Any] = {"title": test.title, "n": len(test.latlon), "rows": {k: _row(ev) for k, ev in evs.items()},
                           "rfm_minus": {k: dict(zip(("geoscore", "se"), paired(scores["rfm"], scores[k])))
                                         for k in FLOWS[1:]}}
    if test.labels is not None:
        out.update(_known_answer(ws, task, test, evs))
    return out


def _known_answer(ws: Workspace, task: Task, test: TestSet, evs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The truth's NLL and the Bayes-optimal GeoScore on the rows; per class: GeoScore over Bayes's,
    the density gap of samples (every model), and RFM's NLL above the truth's."""
    kt = ws.known_answer_task
    labels = torch.as_tensor(test.labels)
    truth = torch.as_tensor(test.latlon, dtype=torch.float64)
    true_lp = kt.log_prob_given_embedding(geo.latlon_to_xyz(truth), torch.as_tensor(test.emb)).numpy()
    bayes = kt.bayes_geoscore_for(truth, labels).numpy()
    gaps = {kind: ws.cached(f"geometry/gap-{kind}", lambda kind=kind: density_gap(ws, task, kind)) for kind in FLOWS}
    classes = []
    for c in range(kt.num_classes):
        rows = test.labels == c
        cell: dict[str, Any] = {"class": c, "what": CLASS_NOTES[c], "n": int(rows.sum())}
        for kind, ev in evs.items():
            gs = geoscores(ev["errors_km"])[rows]
            cell[kind] = {"ratio_to_bayes": float(gs.mean() / bayes[rows].mean()), "gap_nats": gaps[kind]["gap"][c],
                          "gap_se": gaps[kind]["se"][c]}
            if ev["log_prob"] is not None:
                cell[kind]["nll_excess"] = float(np.mean(true_lp[rows] - np.asarray(ev["log_prob"])[rows]))
        classes.append(cell)
    return {"truth": {"nll": float(-true_lp.mean()), "bayes_geoscore": float(bayes.mean())}, "classes": classes,
            "density_samples": ws.config.density_samples}


def density_gap(ws: Workspace, task: Task, kind: str, sampler: Any = None) -> dict[str, Any]:
    """Mean true log-density of a model's samples from each class vector minus the true ``-H_c``
    (nats; 0 is perfect, negative: samples where the truth has little mass), with standard errors."""
    kt = ws.known_answer_task
    g = ws.locator(task, kind)
    xyz = g.sample_xyz(kt.class_vectors(), ws.config.density_samples, seed=ws.config.seed,
                       **({} if sampler is None else dict(steps=sampler.steps, method=sampler.method)))
    lp = kt.log_prob(xyz.double().cpu(), torch.arange(kt.num_classes))
    gap = lp.mean(dim=1) + ws.entropy()
    se = lp.std(dim=1) / lp.shape[1] ** 0.5
    return {"gap": gap.tolist(), "se": se.tolist()}


def run_geometry(ws: Workspace) -> dict[str, Any]:
    return {"splits": {test.key: _split(ws, task, test) for task in ws.tasks for test in task.tests}}
