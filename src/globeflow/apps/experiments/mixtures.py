"""Question 4: how many von Mises-Fisher components a parametric density needs. vMF mixtures with K
components (trained heads: the same network, optimiser and steps as the flows) against RFM on every
test split: NLL, GeoScore and calibration against K, and each K's paired difference from RFM."""

from __future__ import annotations

from typing import Any

import numpy as np

from .geometry import _row
from .setup import Workspace
from .stats import geoscores, paired

__all__ = ["run_mixtures"]


def _minus_rfm(ev: dict[str, Any], rfm: dict[str, Any]) -> dict[str, Any]:
    """NLL and GeoScore of a mixture minus RFM's, paired over the same rows, with standard errors."""
    nll = paired(-np.asarray(ev["log_prob"]), -np.asarray(rfm["log_prob"]))
    gs = paired(geoscores(ev["errors_km"]), geoscores(rfm["errors_km"]))
    return {"nll": nll[0], "nll_se": nll[1], "geoscore": gs[0], "geoscore_se": gs[1]}


def run_mixtures(ws: Workspace) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for task in ws.tasks:
        for test in task.tests:
            rfm = ws.evaluation(task, test, "rfm")
            rows = {}
            for k in ws.config.components:
                ev = ws.evaluation(task, test, "vmf-mixture", k)
                rows[k] = {**_row(ev), "minus_rfm": _minus_rfm(ev, rfm)}
            out[test.key] = {"title": test.title, "rows": rows, "rfm": _row(rfm)}
    return {"splits": out}
