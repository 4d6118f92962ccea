"""Dataset-level prediction and evaluation, written to files atomically (what the CLI calls)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import torch

from .api import Geolocator, Locator, load_locator
from .calibration import calibration_summary, hpd_ranks
from .checkpoint import atomic_write, atomic_write_text
from .data import EmbeddingDataset
from .metrics import distances_km, point_metrics

__all__ = ["predict_dataset", "predict_to_file", "evaluate_to_file", "log_prob_dataset", "log_prob_to_file",
           "density_dataset", "file_sha256", "read_reports", "markdown_table", "compare_reports", "TABLE_COLUMNS",
           "point_and_place_metrics", "write_point_report", "write_table"]

OUTPUT_FORMATS = (".parquet", ".csv")


def file_sha256(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def predict_dataset(geolocator: Locator, dataset: EmbeddingDataset, *, batch_size: int = 256,
                    progress: bool = True, keep_columns: tuple[str, ...] = (),
                    **predict_kwargs: Any) -> dict[str, np.ndarray | list]:
    """Predict every valid row; returns columns ``id``, ``lat_pred``, ``lon_pred``, ``lat``, ``lon``,
    ``error_km``, and the dataset's metadata columns named in ``keep_columns``."""
    ids: list = []
    pred, true = [], []
    kept: dict[str, list] = {c: [] for c in keep_columns}
    for batch, p in geolocator.predict_batches(dataset, batch_size=batch_size, progress=progress,
                                               metadata=bool(keep_columns), **predict_kwargs):
        ids.extend(batch.ids)
        pred.append(p)
        true.append(batch.latlon)
        for c in keep_columns:
            kept[c].extend(batch.metadata[c])
    if not pred:
        raise ValueError(f"{dataset.path}: no valid rows to predict")
    p, t = torch.cat(pred).double(), torch.cat(true).double()
    return {"id": ids, "lat_pred": p[:, 0].numpy(), "lon_pred": p[:, 1].numpy(), "lat": t[:, 0].numpy(),
            "lon": t[:, 1].numpy(), "error_km": distances_km(p, t).numpy(), **kept}


def log_prob_dataset(geolocator: Locator, dataset: EmbeddingDataset, *, batch_size: int = 1024,
                     progress: bool = True, **log_prob_kwargs: Any) -> dict[str, Any]:
    """Log-density of every valid row at its own location: columns ``id``, ``log_prob``."""
    ids: list = []
    values = []
    for batch in dataset.iter_batches(batch_size, progress=progress):
        ids.extend(batch.ids)
        values.append(geolocator.log_prob(batch.embedding, batch.latlon, **log_prob_kwargs))
    if not values:
        raise ValueError(f"{dataset.path}: no valid rows")
    return {"id": ids, "log_prob": torch.cat(values).numpy()}


def density_dataset(geolocator: Locator, dataset: EmbeddingDataset, *, batch_size: int = 256,
                    progress: bool = True, calibration_samples: int = 64, steps: int = 16, cfg: float = 0.0,
                    seed: int = 0) -> dict[str, Any]:
    """Per row: the log-density at the true location and, with ``calibration_samples > 0``, its
    randomised highest-density rank among that many model samples (:mod:`globeflow.calibration`)."""
    ids: list = []
    lps, ranks = [], []
    for i, batch in enumerate(dataset.iter_batches(batch_size, progress=progress)):
        ids.extend(batch.ids)
        lp = geolocator.log_prob(batch.embedding, batch.latlon, steps=steps, cfg=cfg, seed=seed + i).numpy()
        lps.append(lp)
        if calibration_samples > 0:
            _, ls = geolocator.sample_with_log_prob(batch.embedding, calibration_samples, steps=steps, cfg=cfg,
                                                    seed=seed + i)
            ranks.append(hpd_ranks(lp, ls.numpy(), seed=seed + i))
    if not lps:
        raise ValueError(f"{dataset.path}: no valid rows")
    return {"id": ids, "log_prob": np.concatenate(lps), "hpd_rank": np.concatenate(ranks) if ranks else None}


def log_prob_to_file(run: str | os.PathLike, data: str | os.PathLike, out: str | os.PathLike, *,
                     batch_size: int = 1024, device: str | None = None, skip_invalid: bool = False,
                     progress: bool = True, units: str = "sr", **log_prob_kwargs: Any) -> dict[str, Any]:
    """``globeflow log-prob``: one log-density per valid row, with its units in a column."""
    out = _check_out(out)
    geolocator = load_locator(run, device=device)
    geolocator.require_density()
    dataset = EmbeddingDataset(data, skip_invalid=skip_invalid, expected_dim=geolocator.embedding_dim)
    info = dataset.scan()
    columns = log_prob_dataset(geolocator, dataset, batch_size=batch_size, progress=progress, units=units,
                               **log_prob_kwargs)
    unit = "nats/sr" if units == "sr" else "nats/km2"
    columns["units"] = [unit] * len(columns["id"])
    write_table(columns, out)
    return {"out": str(out), "rows": len(columns["id"]), "units": unit, "skipped_rows": info.num_skipped,
            "mean_log_prob": float(np.mean(columns["log_prob"]))}


def write_table(columns: dict[str, Any], out: Path) -> None:
    """Columns of equal length -> ``out`` as Parquet or CSV (by suffix), written atomically."""
    table = pa.table({k: (pa.array([str(i) for i in v]) if k == "id" else pa.array(v)) for k, v in columns.items()})
    if out.suffix == ".parquet":
        atomic_write(out, lambda tmp: pq.write_table(table, tmp))
    else:
        atomic_write(out, lambda tmp: pacsv.write_csv(table, tmp))


def _check_out(out: str | os.PathLike) -> Path:
    out = Path(out)
    if out.suffix not in OUTPUT_FORMATS:
        raise ValueError(f"--out {out}: unsupported output format {out.suffix or '(none)'}; use .parquet or .csv")
    return out


def predict_to_file(run: str | os.PathLike, data: str | os.PathLike, out: str | os.PathLike, *,
                    batch_size: int = 256, device: str | None = None, skip_invalid: bool = False,
                    progress: bool = True, **predict_kwargs: Any) -> dict[str, Any]:
    """``globeflow predict``: one row per valid input row; a summary with the skipped-row count."""
    out = _check_out(out)
    geolocator = load_locator(run, device=device)
    dataset = EmbeddingDataset(data, skip_invalid=skip_invalid, expected_dim=geolocator.embedding_dim)
    info = dataset.scan()
    columns = predict_dataset(geolocator, dataset, batch_size=batch_size, progress=progress, **predict_kwargs)
    write_table(columns, out)
    return {"out": str(out), "rows": len(columns["id"]), "skipped_rows": info.num_skipped,
            "skipped_examples": list(info.skipped_examples)}


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
    if calibration_samples < 0:
        raise ValueError(f"--calibration-samples must be >= 0, got {calibration_samples}")
    out = Path(out)
    t0 = time.time()
    geolocator = load_locator(run, device=device)
    dataset = EmbeddingDataset(data, skip_invalid=skip_invalid, expected_dim=geolocator.embedding_dim)
    info = dataset.scan()
    from .metrics_admin import TRUTH_COLUMNS

    truth_columns = tuple(c for names in TRUTH_COLUMNS.values() for c in names if c in dataset.metadata_columns)
    columns = predict_dataset(geolocator, dataset, batch_size=batch_size, progress=progress,
                              keep_columns=truth_columns, **predict_kwargs)
    pred = torch.from_numpy(np.stack((columns["lat_pred"], columns["lon_pred"]), -1))
    true = torch.from_numpy(np.stack((columns["lat"], columns["lon"]), -1))
    metrics = point_and_place_metrics(pred.numpy(), true.numpy(), {c: columns[c] for c in truth_columns})
    metrics["skipped_rows"] = info.num_skipped
    metrics["nll"], metrics["nll_units"] = None, "nats/sr"
    calibration: dict[str, Any] | None = None
    if not nll:
        metrics["nll_note"] = "not computed (--no-nll)"
    elif not geolocator.has_density:
        metrics["nll_note"] = f"a {geolocator.config.kind} model has no normalised density on the sphere"
    else:
        dens = density_dataset(geolocator, dataset, batch_size=batch_size, progress=progress,
                               calibration_samples=calibration_samples, seed=predict_kwargs.get("seed") or 0)
        metrics["nll"] = float(-np.mean(dens["log_prob"]))
        if dens["hpd_rank"] is not None:
            calibration = calibration_summary(dens["hpd_rank"], samples_per_row=calibration_samples)
            picture = out.with_suffix(".reliability.png")
            from .plotting import reliability_png

            reliability_png(picture, calibration["levels"], calibration["coverage"], n=calibration["n"],
                            title=f"credible-region calibration, {Path(str(data)).name} (n={calibration['n']})")
            calibration["picture"] = str(picture)
    if calibration is None:
        calibration = {"note": metrics.get("nll_note") if metrics["nll"] is None else "not computed (--calibration-samples 0)"}
    metrics["calibration"] = calibration
    report = {
        "metrics": metrics,
        "model": geolocator.config.to_dict(),
        # Trained baselines answer in one forward pass: no sampler.
        "sampler": dataclasses.asdict(geolocator.point_sampler(
            predict_kwargs.get("strategy", "geoscore"), predict_kwargs.get("steps"), predict_kwargs.get("cfg"),
            predict_kwargs.get("method"), protocol=predict_kwargs.get("protocol", "globeflow")))
        if isinstance(geolocator, Geolocator) else None,
        "predict": {k: v for k, v in predict_kwargs.items()},
        "checkpoint": {**geolocator.source, "sha256": file_sha256(geolocator.source["path"])},
        "data": info.to_dict(),
        "seconds": round(time.time() - t0, 2),
    }
    return _write_report(out, Path(str(run)).name, report, pred.numpy(), true.numpy())


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
    """Error pictures beside ``out``, then the report as JSON and as a one-row Markdown table."""
    out.parent.mkdir(parents=True, exist_ok=True)
    report["pictures"] = _error_pictures(out, pred, true, name)
    atomic_write_text(out, json.dumps(report, indent=2))
    atomic_write_text(out.with_suffix(".md"), markdown_table([report], [name]) + "\n")
    return report


def _place_metrics(pred: np.ndarray, true: np.ndarray, truth_columns: dict[str, list]) -> dict[str, Any]:
    """Administrative accuracy (ground truth from the dataset's country / region / sub-region / city
    columns where present, else the truth geocoded like the predictions) and the precision / recall
    / density / coverage of the predicted location set against the true one (k = 3)."""
    from .metrics_admin import admin_accuracy, keys_from_columns
    from .metrics_sets import prdc

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
    from .metrics import distances_km
    from .plotting import error_cdf_png, error_map_png

    d = distances_km(torch.from_numpy(pred), torch.from_numpy(true)).numpy()
    cdf, emap = out.with_suffix(".errors_cdf.png"), out.with_suffix(".errors_map.png")
    error_cdf_png(cdf, {label: d})
    error_map_png(emap, true, d, title=f"{label}: error distance at each true location")
    return {"error_cdf": str(cdf), "error_map": str(emap)}


#: Columns of the comparison table: (metrics key, header, format); a dotted key reads a nested value.
TABLE_COLUMNS = (("geoscore", "GeoScore", "{:.0f}"), ("mean_km", "mean km", "{:.0f}"),
                 ("median_km", "median km", "{:.0f}"),
                 ("acc_1km", "1 km", "{:.3f}"), ("acc_25km", "25 km", "{:.3f}"), ("acc_200km", "200 km", "{:.3f}"),
                 ("acc_750km", "750 km", "{:.3f}"), ("acc_2500km", "2500 km", "{:.3f}"),
                 ("acc_country", "country", "{:.3f}"), ("acc_region", "region", "{:.3f}"),
                 ("acc_sub_region", "sub-region", "{:.3f}"), ("acc_city", "city", "{:.3f}"),
                 ("precision_k3", "P", "{:.2f}"), ("recall_k3", "R", "{:.2f}"), ("density_k3", "D", "{:.2f}"),
                 ("coverage_k3", "C", "{:.2f}"), ("nll", "NLL (nats/sr)", "{:.3f}"),
                 ("calibration.mean_abs_gap", "calib. gap", "{:.3f}"))


def _metric(metrics: dict[str, Any], key: str) -> Any:
    for part in key.split("."):
        metrics = metrics.get(part) if isinstance(metrics, dict) else None  # type: ignore[assignment]
    return metrics


def markdown_table(reports: list[dict[str, Any]], names: list[str]) -> str:
    """One Markdown row per ``globeflow evaluate`` report; missing values are ``-``. P / R / D / C are
    the precision, recall, density and coverage of the predicted location set (k = 3); the
    calibration gap is the mean |coverage - p| of the p-credible regions, p = 0.1 ... 0.9."""
    lines = ["| model | " + " | ".join(h for _, h, _ in TABLE_COLUMNS) + " | n |",
             "|---|" + "---|" * (len(TABLE_COLUMNS) + 1)]
    for name, r in zip(names, reports):
        m = r.get("metrics", {})
        values = [_metric(m, k) for k, _, _ in TABLE_COLUMNS]
        cells = [fmt.format(v) if isinstance(v, (int, float)) else "-" for v, (_, _, fmt) in zip(values, TABLE_COLUMNS)]
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {m.get('n', '-')} |")
    return "\n".join(lines)


def read_reports(paths: Sequence[str | os.PathLike]) -> list[dict[str, Any]]:
    """``globeflow evaluate`` reports, read and checked; a clear error naming a file that is not one."""
    reports = []
    for p in paths:
        try:
            reports.append(json.loads(Path(p).read_text()))
        except (OSError, json.JSONDecodeError, UnicodeDecodeError) as e:
            raise ValueError(f"{p}: not a readable evaluate report ({e})") from None
        if not isinstance(reports[-1], dict) or "metrics" not in reports[-1]:
            raise ValueError(f"{p}: not a globeflow evaluate report (no 'metrics' key)")
    return reports


def compare_reports(paths: list[str | os.PathLike], out: str | os.PathLike | None = None) -> str:
    """``globeflow compare``: one table across ``evaluate`` reports (named by file stem), written to
    ``out`` (Markdown) when given; warns in the table when the reports evaluated different data."""
    if not paths:
        raise ValueError("compare needs at least one report")
    reports = read_reports(paths)
    table = markdown_table(reports, [Path(p).stem for p in paths])
    fingerprints = {r.get("data", {}).get("fingerprint") for r in reports}
    if len(fingerprints) > 1:
        table += "\n\nNote: these reports evaluated different datasets (fingerprints differ); rows are not comparable."
    if out is not None:
        atomic_write_text(Path(out), table + "\n")
    return table
