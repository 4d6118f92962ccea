"""Vectorised validation of one Parquet record batch, and the reason a bad row is bad.

A row is valid when ``lat`` and ``lon`` are finite and in range and its embedding has the dataset's
length ``D`` with finite values; the reasons are built row by row, only for the rows reported.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .schema import EMBEDDING, LAT, LON, _Checked

__all__: list[str] = []  # private helpers of the embedding dataset modules


def _as_float64(column: pa.Array) -> np.ndarray:
    """Numeric column -> ``(n,)`` float64, null as NaN."""
    return np.asarray(column.cast(pa.float64()).to_numpy(zero_copy_only=False), dtype=np.float64)


def _coords_ok(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """``(n,)`` bool; NaN fails every comparison, so null/NaN/inf all come out False."""
    return (np.abs(lat) <= 90.0) & (np.abs(lon) <= 180.0)


def _list_lengths(column: pa.Array) -> np.ndarray:
    """``(n,)`` int64 embedding lengths, -1 where the embedding is null."""
    lengths = pc.fill_null(pc.list_value_length(column), -1)
    return np.asarray(lengths.to_numpy(zero_copy_only=False), dtype=np.int64)


def _values_float32(lists: pa.Array) -> np.ndarray:
    """Concatenated values of non-null lists as float32; null values become NaN and float64
    values too large for float32 become inf, so both fail the finiteness check."""
    values = lists.flatten().to_numpy(zero_copy_only=False)
    with np.errstate(over="ignore"):
        return np.array(values, dtype=np.float32)


def _rows_matrix(column: pa.Array, rows: np.ndarray, dim: int) -> np.ndarray:
    """Embeddings of ``rows`` (each of length ``dim``) -> ``(k, dim)`` float32, a fresh copy."""
    subset = column if len(rows) == len(column) else column.take(pa.array(rows, type=pa.int64()))
    return _values_float32(subset).reshape(len(rows), dim)


def _first_valid_length(column: pa.Array, candidates: np.ndarray, block: int = 64) -> int | None:
    """Length of the first candidate row whose values are all finite, or None.

    Candidates (valid coordinates, non-empty embedding) are checked a block at a time so a
    dataset whose first rows are fine costs one small block.
    """
    lengths = _list_lengths(column)
    for start in range(0, len(candidates), block):
        rows = candidates[start : start + block]
        bad = ~np.isfinite(_values_float32(column.take(pa.array(rows, type=pa.int64()))))
        starts = np.concatenate(([0], np.cumsum(lengths[rows])[:-1]))
        good = np.flatnonzero(~np.logical_or.reduceat(bad, starts))
        if good.size:
            return int(lengths[rows[good[0]]])
    return None


def _find_dim(batch: pa.RecordBatch) -> int | None:
    lat, lon = _as_float64(batch.column(LAT)), _as_float64(batch.column(LON))
    embedding = batch.column(EMBEDDING)
    candidates = np.flatnonzero(_coords_ok(lat, lon) & (_list_lengths(embedding) > 0))
    return _first_valid_length(embedding, candidates)


def _unlabelled(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """``(n,)`` bool: rows with no location at all (both coordinates null or NaN), which a dataset
    read without labels accepts; one missing coordinate, an infinity or a value out of range is a
    broken label, never an absent one."""
    return np.isnan(lat) & np.isnan(lon)


def _check_batch(batch: pa.RecordBatch, dim: int | None, labels: bool = True) -> _Checked:
    """Vectorised validation; ``dim=None`` (no valid row seen yet) marks every row invalid. With
    ``labels=False`` a row without a location is valid (its ``latlon`` is NaN)."""
    n = batch.num_rows
    if dim is None:
        empty = np.zeros(0, dtype=np.int64)
        return _Checked(np.zeros(n, bool), empty, np.zeros((0, 0), np.float32), np.zeros((0, 2)))
    lat, lon = _as_float64(batch.column(LAT)), _as_float64(batch.column(LON))
    embedding = batch.column(EMBEDDING)
    located = _coords_ok(lat, lon) if labels else _coords_ok(lat, lon) | _unlabelled(lat, lon)
    rows = np.flatnonzero(located & (_list_lengths(embedding) == dim))
    matrix = _rows_matrix(embedding, rows, dim)
    finite = np.isfinite(matrix).all(axis=1)
    if not finite.all():
        rows, matrix = rows[finite], matrix[finite]
    valid = np.zeros(n, dtype=bool)
    valid[rows] = True
    return _Checked(valid, rows, matrix, np.stack([lat[rows], lon[rows]], axis=1))


def _coord_reason(name: str, value: Any, bound: float) -> str | None:
    if value is None:
        return f"{name} is null"
    value = float(value)
    if math.isnan(value):
        return f"{name} is NaN"
    if math.isinf(value):
        return f"{name} is {value}"
    if abs(value) > bound:
        return f"{name} {value} is outside [{-bound:g}, {bound:g}]"
    return None


def _embedding_reason(scalar: pa.Scalar, dim: int | None) -> str | None:
    if not scalar.is_valid:
        return "embedding is null"
    values = scalar.values
    if dim is None and len(values) == 0:
        return "embedding is empty"
    if dim is not None and len(values) != dim:
        return f"embedding has length {len(values)}, expected {dim}"
    if values.null_count:
        return "embedding contains null"
    with np.errstate(over="ignore"):
        array = np.asarray(values.to_numpy(zero_copy_only=False), dtype=np.float32)
    if np.isnan(array).any():
        return "embedding contains NaN"
    if np.isinf(array).any():
        return "embedding contains inf (or a value too large for float32)"
    return None


def _row_reason(batch: pa.RecordBatch, index: int, dim: int | None, labels: bool = True) -> str:
    """Why row ``index`` of ``batch`` is invalid (slow path, only for the few reported rows)."""
    lat, lon = batch.column(LAT)[index].as_py(), batch.column(LON)[index].as_py()
    absent = not labels and all(v is None or math.isnan(float(v)) for v in (lat, lon))
    reason = (
        (None if absent else _coord_reason(LAT, lat, 90.0) or _coord_reason(LON, lon, 180.0))
        or _embedding_reason(batch.column(EMBEDDING)[index], dim)
    )
    # Only reachable when no valid row exists anywhere, i.e. dim could not be determined.
    return reason or "no valid row to take the embedding dimension from"
