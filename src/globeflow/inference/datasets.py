"""A locator over a whole embedding dataset: predictions and log-densities per row, as columns (what
``globeflow predict`` and ``log-prob`` write and ``evaluate`` scores)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..data.embeddings import EmbeddingDataset
from ..geo.distance import distances_km
from .locator import Locator

__all__ = ["predict_dataset", "log_prob_dataset"]


def predict_dataset(geolocator: Locator, dataset: EmbeddingDataset, *, batch_size: int = 256,
                    progress: bool = True, keep_columns: tuple[str, ...] = (),
                    **predict_kwargs: Any) -> dict[str, np.ndarray | list]:
    """Predict every valid row; returns columns ``id``, ``lat_pred``, ``lon_pred``, ``lat``, ``lon``,
    ``error_km`` (NaN for a row without a location), and the dataset's metadata columns named in
    ``keep_columns``."""
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
    # distances_km scores an invalid truth as the largest distance (a metric's convention); a row
    # that has no truth has no error.
    error = torch.where(torch.isnan(t).any(dim=1), torch.nan, distances_km(p, t))
    return {"id": ids, "lat_pred": p[:, 0].numpy(), "lon_pred": p[:, 1].numpy(), "lat": t[:, 0].numpy(),
            "lon": t[:, 1].numpy(), "error_km": error.numpy(), **kept}


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
