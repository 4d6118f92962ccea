"""``globeflow evaluate``: every metric of a model on a labelled dataset, as a report (JSON, a Markdown
row, pictures), written atomically; the same report for predictions without a density (baselines)."""

from __future__ import annotations

import dataclasses
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..data.embeddings import EmbeddingDataset
from ..geo.distance import distances_km
from ..inference.datasets import predict_dataset
from ..inference.geolocator import Geolocator
from ..inference.loading import load_locator
from ..inference.locator import Locator
from ..io.files import atomic_write_text, file_sha256
from ..viz.charts import error_cdf_png, error_map_png, reliability_png
from .admin import TRUTH_COLUMNS, admin_accuracy, keys_from_columns
from .calibration import calibration_summary, density_dataset, recalibrated_summary
from .metrics import point_metrics
from .sets import prdc
from .tables import markdown_table

__all__ = ["Evaluation", "evaluate", "evaluate_to_file", "point_and_place_metrics", "write_point_report"]


@dataclasses.dataclass(frozen=True)
class Evaluation:
    """What ``globeflow evaluate`` measures, with the rows behind it: ``report`` (the JSON written by
    :func:`evaluate_to_file`, less its pictures), ``pred``/``true (N, 2)`` degrees per valid row in
    dataset order, ``log_prob (N,)`` nats/sr at the truth (``None`` without a density)."""

    report: dict[str, Any]
    pred: np.ndarray
    true: np.ndarray
    log_prob: np.ndarray | None


def evaluate(run: str | os.PathLike | Locator, data: str | os.PathLike, *, batch_size: int = 256,
             device: str | None = None, skip_invalid: bool = False, progress: bool = True, nll: bool = True,
             calibration_samples: int = 64, reliability: str | os.PathLike | None = None,
             **predict_kwargs: Any) -> Evaluation:
    """:func:`evaluate_to_file`'s measurements, in memory: a run folder or a loaded locator on a labelled
    dataset. ``reliability``: where to draw the reliability diagram (none when ``None``)."""
    if calibration_samples < 0:
        raise ValueError(f"--calibration-samples must be >= 0, got {calibration_samples}")
    t0 = time.time()
    geolocator = run if isinstance(run, Locator) else load_locator(run, device=device)
    dataset = EmbeddingDataset(data, skip_invalid=skip_invalid, expected_dim=geolocator.embedding_dim)
    info = dataset.scan()
    truth_columns = tuple(c for names in TRUTH_COLUMNS.values() for c in names if c in dataset.metadata_columns)
    columns = predict_dataset(geolocator, dataset, batch_size=batch_size, progress=progress,
                              keep_columns=truth_columns, **predict_kwargs)
    pred = np.stack((columns["lat_pred"], columns["lon_pred"]), -1)
    true = np.stack((columns["lat"], columns["lon"]), -1)
    metrics = point_and_place_metrics(pred, true, {c: columns[c] for c in truth_columns})
    metrics["skipped_rows"] = info.num_skipped
    metrics["nll"], metrics["nll_units"] = None, "nats/sr"
    calibration: dict[str, Any] | None = None
    log_prob = None
    if not nll:
        metrics["nll_note"] = "not computed (--no-nll)"
    elif not geolocator.has_density:
        metrics["nll_note"] = f"a {geolocator.config.kind} model has no normalised density on the sphere"
    else:
        dens = density_dataset(geolocator, dataset, batch_size=batch_size, progress=progress,
                               calibration_samples=calibration_samples, seed=predict_kwargs.get("seed") or 0)
        log_prob = dens["log_prob"]
        metrics["nll"] = float(-np.mean(log_prob))
        if dens["hpd_rank"] is not None:
            calibration = calibration_summary(dens["hpd_rank"], samples_per_row=calibration_samples)
            if reliability is not None:
                reliability_png(reliability, calibration["levels"], calibration["coverage"], n=calibration["n"],
                                title=f"credible-region calibration, {Path(str(data)).name} (n={calibration['n']})")
                calibration["picture"] = str(reliability)
            if geolocator.calibration is not None:
                # The model's own coverage above; the regions its answers report, recalibrated, here.
                calibration["after_recalibration"] = recalibrated_summary(dens["hpd_rank"], geolocator.calibration)
    if calibration is None:
        calibration = {"note": metrics.get("nll_note") if metrics["nll"] is None else "not computed (--calibration-samples 0)"}
    metrics["calibration"] = calibration
    report = {
        "metrics": metrics,
        "model": geolocator.config.to_dict(),
        # Trained baselines answer in one forward pass: no sampler.
        "sampler": dataclasses.asdict(geolocator.point_sampler(
            predict_kwargs.get("strategy", "geoscore"), predict_kwargs.get("steps"), predict_kwargs.get("guidance"),
            predict_kwargs.get("method"), protocol=predict_kwargs.get("protocol", "globeflow")))
        if isinstance(geolocator, Geolocator) else None,
        "predict": {k: v for k, v in predict_kwargs.items()},
        "checkpoint": {**geolocator.source, "sha256": file_sha256(geolocator.source["path"])},
        "data": info.to_dict(),
        "seconds": round(time.time() - t0, 2),
    }
    return Evaluation(report, pred, true, log_prob)


def evaluate_to_file(run: str | os.PathLike, data: str | os.PathLike, out: str | os.PathLike, *,
                     batch_size: int = 256, device: str | None = None, skip_invalid: bool = False,
                     progress: bool = True, nll: bool = True, calibration_samples: int = 64,
                     **predict_kwargs: Any) -> dict[str, Any]:
    """``globeflow evaluate``: point metrics (+ NLL and calibration for rfm models) and provenance, as JSON.

    ``nll`` is the mean negative log-density at the true locations, nats per steradian (exact
    probability-flow ODE, RK4 with 16 steps); ``None`` with a reason for the R^3 variants.
    ``calibration`` gives the coverage of the p-credible regions for p = 0.1 ... 0.9, from each row's
    rank among ``calibration_samples`` samples with exact densities, and a reliability diagram PNG
    next to ``out``.
    """
    out = Path(out)
    ev = evaluate(run, data, batch_size=batch_size, device=device, skip_invalid=skip_invalid, progress=progress,
                  nll=nll, calibration_samples=calibration_samples, reliability=out.with_suffix(".reliability.png"),
                  **predict_kwargs)
    return _write_report(out, Path(str(run)).name, ev.report, ev.pred, ev.true)


def point_and_place_metrics(pred: np.ndarray, true: np.ndarray, truth_columns: dict[str, list] | None = None
                            ) -> dict[str, Any]:
    """Every metric of a point prediction ``pred (N, 2)`` against ``true (N, 2)``: distances,
    GeoScore and accuracies, administrative accuracy, set precision / recall / density / coverage."""
    metrics = point_metrics(torch.from_numpy(pred), torch.from_numpy(true))
    metrics.update(_place_metrics(pred, true, truth_columns or {}))
    return metrics


def write_point_report(out: Path, name: str, pred: np.ndarray, true: np.ndarray, provenance: dict[str, Any], *,
                       t0: float, nll_note: str) -> dict[str, Any]:
    """The ``evaluate`` report of predictions without a density (baselines): JSON, Markdown, pictures."""
    metrics = point_and_place_metrics(pred, true)
    metrics.update(nll=None, nll_units="nats/sr", nll_note=nll_note, calibration={"note": nll_note})
    report = {"metrics": metrics, **provenance, "seconds": round(time.time() - t0, 2)}
    return _write_report(out, name, report, pred, true)


def _write_report(out: Path, name: str, report: dict[str, Any], pred: np.ndarray, true: np.ndarray) -> dict[str, Any]:
    """Error pictures beside ``out``, the report as a one-row Markdown table and, last, as JSON.

    All or nothing: each file is written atomically and the JSON (what a reader takes for a finished
    report) last; if any write fails (a full disk), the files this report already wrote are removed,
    so no complete-looking ``report.json`` stands beside a missing ``.md``."""
    out.parent.mkdir(parents=True, exist_ok=True)
    siblings = [out.with_suffix(s) for s in (".md", ".errors_cdf.png", ".errors_map.png", ".reliability.png")]
    try:
        report["pictures"] = _error_pictures(out, pred, true, name)
        atomic_write_text(out.with_suffix(".md"), markdown_table([report], [name]) + "\n")
        atomic_write_text(out, json.dumps(report, indent=2))
    except BaseException:
        for path in siblings:
            path.unlink(missing_ok=True)
        raise
    return report


def _place_metrics(pred: np.ndarray, true: np.ndarray, truth_columns: dict[str, list]) -> dict[str, Any]:
    """Administrative accuracy (ground truth from the dataset's country / region / sub-region / city
    columns where present, else the truth geocoded like the predictions) and the precision / recall
    / density / coverage of the predicted location set against the true one (k = 3)."""
    given = keys_from_columns(truth_columns)
    out: dict[str, Any] = dict(admin_accuracy(pred, true, true_keys=given or None))
    out["admin_truth"] = {level: "dataset columns" if level in given else "geocoded" for level in
                          ("country", "region", "sub_region", "city")}
    out.pop("n", None)
    if len(true) > 3:
        sets = prdc(pred, true, k=3)
        out.update({f"{k}_k3": sets[k] for k in ("precision", "recall", "density", "coverage")})
    return out


def _error_pictures(out: Path, pred: np.ndarray, true: np.ndarray, label: str) -> dict[str, str]:
    d = distances_km(torch.from_numpy(pred), torch.from_numpy(true)).numpy()
    cdf, emap = out.with_suffix(".errors_cdf.png"), out.with_suffix(".errors_map.png")
    error_cdf_png(cdf, {label: d})
    error_map_png(emap, true, d, title=f"{label}: error distance at each true location")
    return {"error_cdf": str(cdf), "error_map": str(emap)}
