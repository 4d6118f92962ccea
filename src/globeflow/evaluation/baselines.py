"""``globeflow baseline``: evaluate a retrieval or uniform baseline with the same harness and report.

The report has the layout of ``globeflow evaluate``'s (``metrics`` with the same keys, ``data``
fingerprint, pictures, a Markdown table), so ``globeflow compare`` puts baselines and models in one
table. Baselines have no density: ``nll`` is null with the reason.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..baselines.knn import KNNGeolocator
from ..data.embeddings import EmbeddingDataset
from .report import write_point_report

__all__ = ["BASELINES", "read_arrays", "uniform_guesses", "baseline_predictions", "baseline_to_file"]

BASELINES = ("knn", "uniform")


def read_arrays(path: str | os.PathLike, *, skip_invalid: bool = False,
                expected_dim: int | None = None) -> tuple[np.ndarray, np.ndarray, list[str], Any]:
    """All valid rows of an embedding dataset: ``(latlon (N, 2), embeddings (N, D), ids, info)``."""
    dataset = EmbeddingDataset(path, skip_invalid=skip_invalid, expected_dim=expected_dim)
    info = dataset.scan()
    latlon, emb, ids = [], [], []
    for batch in dataset.iter_batches(8192):
        latlon.append(batch.latlon.numpy())
        emb.append(batch.embedding.numpy())
        ids.extend(batch.ids)
    if not ids:
        raise ValueError(f"{path}: no valid rows")
    return np.concatenate(latlon), np.concatenate(emb), ids, info


def uniform_guesses(n: int, seed: int) -> np.ndarray:
    """``(n, 2)`` degrees, area-uniform on the sphere (``sin lat`` and ``lon`` uniform), seeded."""
    g = torch.Generator().manual_seed(seed)
    z = torch.rand(n, generator=g, dtype=torch.float64) * 2 - 1
    lon = torch.rand(n, generator=g, dtype=torch.float64) * 360 - 180
    return torch.stack((torch.rad2deg(torch.asin(z)), lon), 1).numpy()


def baseline_predictions(kind: str, test_emb: np.ndarray, *, train: tuple[np.ndarray, np.ndarray] | None = None,
                         k: int = 1, seed: int = 0) -> np.ndarray:
    """``(N, 2)`` degrees: ``knn`` (``train = (latlon, embeddings)``; k = 1, or the spherical mean of
    k neighbours) or ``uniform`` (area-uniform random guesses, seeded)."""
    if kind == "knn":
        if train is None:
            raise ValueError("the knn baseline needs --train (a labelled embedding dataset)")
        return KNNGeolocator(train[1], train[0]).predict(test_emb, k)
    if kind == "uniform":
        return uniform_guesses(len(test_emb), seed)
    raise ValueError(f"unknown baseline {kind!r}; expected one of {', '.join(BASELINES)}")


def baseline_to_file(kind: str, data: str | os.PathLike, out: str | os.PathLike, *,
                     train: str | os.PathLike | None = None, k: int = 1, seed: int = 0,
                     skip_invalid: bool = False) -> dict[str, Any]:
    """Evaluate a baseline on the labelled dataset ``data`` and write the report ``out`` (JSON + .md)."""
    if kind not in BASELINES:
        raise ValueError(f"unknown baseline {kind!r}; expected one of {', '.join(BASELINES)}")
    if k < 1:
        raise ValueError(f"--k must be >= 1, got {k}")
    t0 = time.time()
    true, emb, _, info = read_arrays(data, skip_invalid=skip_invalid)
    train_arrays, train_info = None, None
    if kind == "knn":
        if train is None:
            raise ValueError("the knn baseline needs --train (a labelled embedding dataset)")
        train_ll, train_emb, _, train_info = read_arrays(train, skip_invalid=skip_invalid, expected_dim=emb.shape[1])
        train_arrays = (train_ll, train_emb)
    pred = baseline_predictions(kind, emb, train=train_arrays, k=k, seed=seed)
    name = f"{kind}{k}" if kind == "knn" else kind
    provenance = {"baseline": {"kind": kind, "k": k if kind == "knn" else None, "seed": seed,
                               "train": None if train_info is None else train_info.to_dict()},
                  "data": info.to_dict()}
    return write_point_report(Path(out), name, pred, true, provenance, t0=t0,
                              nll_note="a baseline has no density on the sphere")
