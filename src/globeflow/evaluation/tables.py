"""Comparison tables: one row per ``globeflow evaluate`` report (models and baselines alike)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Sequence

from ..io.files import atomic_write_text

__all__ = ["TABLE_COLUMNS", "markdown_table", "read_reports", "compare_reports"]

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
