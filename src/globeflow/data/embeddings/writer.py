"""Writing an embedding dataset file (atomically)."""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any, Sequence, Union

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from .chunks import _require_int
from .schema import EMBEDDING, ID, LAT, LON, REQUIRED_COLUMNS, PathLike

__all__ = ["write_embeddings"]

ArrayLike = Union[np.ndarray, torch.Tensor]


def _to_numpy(values: ArrayLike, dtype: type[np.generic]) -> np.ndarray:
    if isinstance(values, torch.Tensor):
        torch_dtype = torch.float64 if dtype is np.float64 else torch.float32
        return values.detach().to("cpu", torch_dtype).numpy()
    return np.asarray(values, dtype=dtype)


def _column_array(
    name: str, values: Sequence[Any] | np.ndarray | torch.Tensor, num_rows: int
) -> pa.Array:
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    array = pa.array(values) if isinstance(values, np.ndarray) else pa.array(list(values))
    if len(array) != num_rows:
        raise ValueError(f"column {name!r} has {len(array)} values, expected {num_rows}")
    return array


def _embedding_table(
    latlon: np.ndarray, embedding: np.ndarray, ids: Any, metadata: dict[str, Any] | None
) -> pa.Table:
    if latlon.ndim != 2 or latlon.shape[1] != 2:
        raise ValueError(f"latlon must have shape (N, 2), got {latlon.shape}")
    if embedding.ndim != 2 or embedding.shape[1] < 1:
        raise ValueError(f"embedding must have shape (N, D) with D >= 1, got {embedding.shape}")
    num_rows, dim = embedding.shape
    if latlon.shape[0] != num_rows:
        raise ValueError(f"latlon has {latlon.shape[0]} rows but embedding has {num_rows}")
    values = pa.array(np.ascontiguousarray(embedding).reshape(-1), type=pa.float32())
    columns: dict[str, pa.Array] = {
        LAT: pa.array(latlon[:, 0], type=pa.float64()),
        LON: pa.array(latlon[:, 1], type=pa.float64()),
        EMBEDDING: pa.FixedSizeListArray.from_arrays(values, dim),
    }
    if ids is not None:
        columns[ID] = _column_array(ID, ids, num_rows)
    for name, column in (metadata or {}).items():
        if name in columns or name in (*REQUIRED_COLUMNS, ID):
            raise ValueError(f"metadata column {name!r} clashes with a reserved column")
        columns[name] = _column_array(name, column, num_rows)
    return pa.table(columns)


def write_embeddings(
    path: PathLike,
    latlon: ArrayLike,
    embedding: ArrayLike,
    *,
    ids: Sequence[Any] | np.ndarray | torch.Tensor | None = None,
    metadata: dict[str, Sequence[Any]] | None = None,
    row_group_size: int | None = None,
) -> Path:
    """Write an embedding dataset file atomically and return its path.

    ``latlon`` is ``(N, 2)`` degrees (lat, lon), ``embedding`` is ``(N, D)``; ``ids`` and each
    ``metadata`` column hold ``N`` values. Columns: ``lat``, ``lon`` float64, ``embedding``
    ``fixed_size_list<float32, D>``, ``id``, then the metadata columns. Values are written as
    given (no validation), so invalid rows can be written on purpose. The file is written to a
    hidden temporary file in the same folder, synced, then moved over ``path`` with
    ``os.replace``, so readers never see a partial file. Parent folders are created.
    """
    if row_group_size is not None:
        _require_int("row_group_size", row_group_size, 1)
    latlon_np = _to_numpy(latlon, np.float64)
    table = _embedding_table(latlon_np, _to_numpy(embedding, np.float32), ids, metadata)
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    # Leading dot and no .parquet suffix: dataset discovery never picks up a half-written file.
    temporary = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
    try:
        with open(temporary, "wb") as fh:
            pq.write_table(table, fh, row_group_size=row_group_size, write_page_checksum=True)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(temporary, target)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return target
