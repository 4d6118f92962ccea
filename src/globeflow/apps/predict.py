"""``globeflow predict`` and ``globeflow log-prob`` on embedding datasets: one row per valid input row,
written atomically as Parquet or CSV."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from ..data.embeddings import EmbeddingDataset
from ..inference.datasets import log_prob_dataset, predict_dataset
from ..inference.loading import load_locator
from ..io.tables import check_table_path, write_table

__all__ = ["predict_to_file", "log_prob_to_file"]


def predict_to_file(run: str | os.PathLike, data: str | os.PathLike, out: str | os.PathLike, *,
                    batch_size: int = 256, device: str | None = None, skip_invalid: bool = False,
                    progress: bool = True, **predict_kwargs: Any) -> dict[str, Any]:
    """``globeflow predict``: one row per valid input row; a summary with the skipped-row count."""
    out = check_table_path(out)
    geolocator = load_locator(run, device=device)
    # Predictions need no truth: unlabelled rows (``embed --unlabelled``) are predicted too.
    dataset = EmbeddingDataset(data, skip_invalid=skip_invalid, expected_dim=geolocator.embedding_dim, labels=False)
    info = dataset.scan()
    columns = predict_dataset(geolocator, dataset, batch_size=batch_size, progress=progress, **predict_kwargs)
    write_table(columns, out)
    return {"out": str(out), "rows": len(columns["id"]), "skipped_rows": info.num_skipped,
            "skipped_examples": list(info.skipped_examples)}


def log_prob_to_file(run: str | os.PathLike, data: str | os.PathLike, out: str | os.PathLike, *,
                     batch_size: int = 1024, device: str | None = None, skip_invalid: bool = False,
                     progress: bool = True, units: str = "sr", **log_prob_kwargs: Any) -> dict[str, Any]:
    """``globeflow log-prob``: one log-density per valid row, with its units in a column."""
    out = check_table_path(out)
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
