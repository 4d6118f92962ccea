"""The embedding dataset format: columns, errors, what a scan finds, batches, and the files.

See :mod:`globeflow.data.embeddings` for the format.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence, Union

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

__all__ = ["LAT", "LON", "EMBEDDING", "ID", "REQUIRED_COLUMNS", "MAX_SKIPPED_EXAMPLES", "DatasetError",
           "InvalidRowError", "DatasetInfo", "Batch"]

LAT = "lat"
LON = "lon"
EMBEDDING = "embedding"
ID = "id"
REQUIRED_COLUMNS: tuple[str, ...] = (LAT, LON, EMBEDDING)
MAX_SKIPPED_EXAMPLES = 20

PathLike = Union[str, "os.PathLike[str]"]
_FINGERPRINT_VERSION = b"globeflow-embedding-dataset-v1"


class DatasetError(ValueError):
    """The dataset cannot be read as a whole: missing path, not Parquet, missing columns,
    no valid rows. The message names the path and the problem."""


class InvalidRowError(DatasetError):
    """A row failed validation. The message is ``"<file> row <n>: <reason>"`` with ``n`` the
    0-based row number within that file."""

    def __init__(self, path: PathLike, row: int, reason: str) -> None:
        super().__init__(_row_message(path, row, reason))
        self.path = str(path)
        self.row = row
        self.reason = reason

    def __reduce__(self) -> tuple[Any, ...]:
        # The default reduce would call __init__ with the message only.
        return (type(self), (self.path, self.row, self.reason))


@dataclass(frozen=True)
class DatasetInfo:
    """What :meth:`EmbeddingDataset.scan` found.

    ``fingerprint`` is a sha256 hex digest over each file's name relative to the dataset root,
    its size in bytes and its raw Parquet footer (schema, row groups and their row counts, column
    chunk offsets and sizes, column statistics). It is cheap (no data pages are read) and changes
    when files are added, removed, renamed or rewritten with different sizes, layout or
    statistics; an in-place edit that keeps all of those identical is not detected.
    """

    files: tuple[str, ...]
    num_rows: int
    num_valid: int
    num_skipped: int
    dim: int
    fingerprint: str
    skipped_examples: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly dict (tuples become lists)."""
        out = asdict(self)
        out["files"] = list(self.files)
        out["skipped_examples"] = list(self.skipped_examples)
        return out


@dataclass
class Batch:
    """A batch of ``B`` valid rows in file order.

    ``embedding`` is ``(B, D)`` float32, ``latlon`` is ``(B, 2)`` float64 degrees (lat, lon).
    ``ids`` holds one string per row: the ``id`` column as text, or ``"<file>:<row>"`` (file path
    relative to the dataset root without ``.parquet``, 0-based row in that file) where there is
    no ``id`` column or the id is null, so every row can be traced back. ``metadata`` maps other
    column names to ``B`` Python values each; it is empty unless requested.
    """

    embedding: torch.Tensor
    latlon: torch.Tensor
    ids: list[str]
    metadata: dict[str, list[Any]] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.embedding.shape[0])


@dataclass(frozen=True)
class _FileMeta:
    path: Path
    name: str  # relative to the dataset root, posix, used in fingerprints and fallback ids
    metadata: pq.FileMetaData
    columns: tuple[str, ...]
    row_group_offsets: tuple[int, ...]  # row number in the file of each row group's first row

    @property
    def stem(self) -> str:
        return self.name[: -len(".parquet")] if self.name.endswith(".parquet") else self.name


@dataclass(frozen=True)
class _Fragment:
    """One (file, row group) unit of streaming, with its number of valid rows from the scan."""

    file_index: int
    row_group: int
    num_valid: int


@dataclass
class _Checked:
    """Validation of one record batch of ``n`` rows, ``k`` of them valid."""

    valid: np.ndarray  # (n,) bool
    rows: np.ndarray  # (k,) int64, batch-local indices of the valid rows, ascending
    embedding: np.ndarray  # (k, D) float32
    latlon: np.ndarray  # (k, 2) float64


@dataclass
class _SkipReport:
    count: int = 0
    examples: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------------------------
# Files


def _row_message(path: PathLike, row: int, reason: str) -> str:
    return f"{path} row {row}: {reason}"


def _is_ignored(relative: Path) -> bool:
    return any(part.startswith((".", "_")) for part in relative.parts)


def _discover(root: Path) -> tuple[Path, ...]:
    """The Parquet files of a dataset path, sorted."""
    if root.is_file():
        return (root,)
    if root.is_dir():
        files = sorted(
            p
            for p in root.rglob("*.parquet")
            if p.is_file() and not _is_ignored(p.relative_to(root))
        )
        if not files:
            raise DatasetError(f"{root}: folder contains no .parquet files")
        return tuple(files)
    raise DatasetError(f"{root}: no such file or folder")


def _relative_name(path: Path, root: Path) -> str:
    return path.name if path == root else path.relative_to(root).as_posix()


def _check_schema(path: Path, schema: pa.Schema) -> None:
    names = schema.names
    missing = [c for c in REQUIRED_COLUMNS if c not in names]
    if missing:
        present = ", ".join(names) if names else "(none)"
        raise DatasetError(
            f"{path}: missing required column(s) {', '.join(missing)}; columns present: {present}"
        )
    for name in (LAT, LON):
        kind = schema.field(name).type
        if not (pa.types.is_floating(kind) or pa.types.is_integer(kind)):
            raise DatasetError(f"{path}: column {name!r} has type {kind}, expected a number")
    kind = schema.field(EMBEDDING).type
    list_types = (pa.types.is_list, pa.types.is_large_list, pa.types.is_fixed_size_list)
    is_list = any(is_type(kind) for is_type in list_types)
    if not is_list or not pa.types.is_floating(kind.value_type):
        raise DatasetError(
            f"{path}: column {EMBEDDING!r} has type {kind}, "
            "expected list<float32> or fixed_size_list<float32>"
        )


def _open_file(path: Path, root: Path) -> _FileMeta:
    """Read and check one file's footer; no data pages are read."""
    try:
        with pq.ParquetFile(path) as parquet:
            schema = parquet.schema_arrow
            metadata = parquet.metadata
    except (pa.ArrowException, OSError) as exc:
        raise DatasetError(f"{path}: not a readable Parquet file ({exc})") from exc
    _check_schema(path, schema)
    sizes = [metadata.row_group(i).num_rows for i in range(metadata.num_row_groups)]
    offsets = tuple(int(x) for x in np.concatenate(([0], np.cumsum(sizes)[:-1]))) if sizes else ()
    return _FileMeta(path, _relative_name(path, root), metadata, tuple(schema.names), offsets)


def _footer(path: Path) -> bytes:
    """Raw Thrift footer of a Parquet file (the bytes before the trailing length + magic)."""
    with open(path, "rb") as fh:
        size = fh.seek(0, os.SEEK_END)
        if size < 12:
            raise DatasetError(f"{path}: not a readable Parquet file (only {size} bytes)")
        fh.seek(size - 8)
        tail = fh.read(8)
        length = int.from_bytes(tail[:4], "little")
        if tail[4:] != b"PAR1" or length > size - 12:
            raise DatasetError(f"{path}: not a readable Parquet file (bad footer)")
        fh.seek(size - 8 - length)
        return fh.read(length)


def _fingerprint(files: Sequence[_FileMeta]) -> str:
    digest = hashlib.sha256(_FINGERPRINT_VERSION)
    for meta in files:
        parts = (meta.name.encode(), str(meta.path.stat().st_size).encode(), _footer(meta.path))
        for part in parts:
            # Length prefixes keep different splits of the same bytes from colliding.
            digest.update(len(part).to_bytes(8, "little"))
            digest.update(part)
    return digest.hexdigest()
