"""Embedding datasets: Parquet files of ``(lat, lon, embedding)`` rows, validated while streaming.

A dataset is one Parquet file or a folder searched recursively for ``*.parquet`` files (sorted
paths; names with a component starting with ``.`` or ``_`` are ignored, as pyarrow.dataset does,
so temporary files and ``_SUCCESS``-style markers are never read). Columns:

* ``lat``, ``lon``: degrees, any numeric type;
* ``embedding``: ``list<float>`` or ``fixed_size_list<float>``, ``D`` values in every row;
* ``id`` (optional): string or integer row identifiers;
* anything else is metadata (``country``, ``city``, ...), returned on request.

A row is invalid when a coordinate is null, NaN, inf or out of range (lat in [-90, 90], lon in
[-180, 180]), or its embedding is null, has a length other than ``D``, or holds NaN/inf/null
values. ``D`` is ``expected_dim`` when given, else the length of the first valid row in file order.
By default the first invalid row raises :class:`InvalidRowError`; with ``skip_invalid=True``
invalid rows are dropped and counted. Validation is vectorised per record batch; only the
message for a bad row is built row by row.
"""

from __future__ import annotations

import hashlib
import itertools
import math
import os
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Union

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import torch
from tqdm import tqdm

__all__ = [
    "LAT",
    "LON",
    "EMBEDDING",
    "ID",
    "REQUIRED_COLUMNS",
    "MAX_SKIPPED_EXAMPLES",
    "DatasetError",
    "InvalidRowError",
    "DatasetInfo",
    "Batch",
    "EmbeddingDataset",
    "write_embeddings",
]

LAT = "lat"
LON = "lon"
EMBEDDING = "embedding"
ID = "id"
REQUIRED_COLUMNS: tuple[str, ...] = (LAT, LON, EMBEDDING)
MAX_SKIPPED_EXAMPLES = 20

PathLike = Union[str, "os.PathLike[str]"]
ArrayLike = Union[np.ndarray, torch.Tensor]
_Rows = tuple[np.ndarray, np.ndarray]  # (embedding (k, D) float32, latlon (k, 2) float64)

# Decoded size aimed at for one Parquet record batch: large enough that per-batch overhead is
# negligible, small enough that a 4096-dim dataset still streams in a few tens of MB.
_READ_BYTES = 32 * 2**20
_READ_ROWS_UNKNOWN_DIM = 8192
# Rows handed on at a time from a shuffled buffer or the cache, so no full second copy is made.
_EMIT_ROWS = 8192
# Bytes one cached row costs besides its embedding: lat and lon as float64.
_LATLON_BYTES = 16
# Domain tags keep the random streams of the different shuffling stages independent.
_TAG_ROWS, _TAG_FRAGMENTS, _TAG_BUFFER = 0, 1, 2
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


# --------------------------------------------------------------------------------------------
# Validation of one record batch


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


def _check_batch(batch: pa.RecordBatch, dim: int | None) -> _Checked:
    """Vectorised validation; ``dim=None`` (no valid row seen yet) marks every row invalid."""
    n = batch.num_rows
    if dim is None:
        empty = np.zeros(0, dtype=np.int64)
        return _Checked(np.zeros(n, bool), empty, np.zeros((0, 0), np.float32), np.zeros((0, 2)))
    lat, lon = _as_float64(batch.column(LAT)), _as_float64(batch.column(LON))
    embedding = batch.column(EMBEDDING)
    rows = np.flatnonzero(_coords_ok(lat, lon) & (_list_lengths(embedding) == dim))
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


def _row_reason(batch: pa.RecordBatch, index: int, dim: int | None) -> str:
    """Why row ``index`` of ``batch`` is invalid (slow path, only for the few reported rows)."""
    reason = (
        _coord_reason(LAT, batch.column(LAT)[index].as_py(), 90.0)
        or _coord_reason(LON, batch.column(LON)[index].as_py(), 180.0)
        or _embedding_reason(batch.column(EMBEDDING)[index], dim)
    )
    # Only reachable when no valid row exists anywhere, i.e. dim could not be determined.
    return reason or "no valid row to take the embedding dimension from"


# --------------------------------------------------------------------------------------------
# Re-chunking


def _concat(parts: Sequence[Any]) -> Any:
    if isinstance(parts[0], np.ndarray):
        return np.concatenate(parts)
    return list(itertools.chain.from_iterable(parts))


class _RowQueue:
    """Cuts a stream of row chunks (tuples of equal-length numpy arrays or lists) into pieces of
    a requested number of rows. Pieces inside one chunk are views; only pieces that straddle
    chunks are copied, so the cost is linear in the rows passed through."""

    def __init__(self, chunks: Iterable[tuple[Any, ...]]) -> None:
        self._chunks = iter(chunks)
        self._head: tuple[Any, ...] | None = None
        self._pos = 0

    def take(self, n: int) -> tuple[Any, ...] | None:
        """Up to ``n`` rows (fewer only when the stream ends); None when nothing is left."""
        parts: list[tuple[Any, ...]] = []
        need = n
        while need > 0:
            if self._head is None:
                self._head = next(self._chunks, None)
                self._pos = 0
                if self._head is None:
                    break
            size = len(self._head[0])
            count = min(size - self._pos, need)
            parts.append(tuple(col[self._pos : self._pos + count] for col in self._head))
            self._pos += count
            need -= count
            if self._pos == size:
                self._head = None
        if not parts:
            return None
        if len(parts) == 1:
            return parts[0]
        return tuple(_concat(cols) for cols in zip(*parts))


def _rebatch(
    chunks: Iterable[tuple[Any, ...]], batch_size: int, keep_last: bool
) -> Iterator[tuple[Any, ...]]:
    """Pieces of exactly ``batch_size`` rows; the short tail only with ``keep_last``."""
    queue = _RowQueue(chunks)
    while (piece := queue.take(batch_size)) is not None:
        if len(piece[0]) < batch_size and not keep_last:
            return
        yield piece


# --------------------------------------------------------------------------------------------
# Helpers for shuffling


def _rng(seed: int, *key: int) -> np.random.Generator:
    # SeedSequence wants non-negative entropy; the modulo keeps negative seeds usable.
    return np.random.default_rng(np.random.SeedSequence([seed % 2**64, *key]))


def _shard_size(n: int, rank: int, world_size: int) -> int:
    """Number of items ``rank`` gets from ``range(n)[rank::world_size]``."""
    return len(range(rank, n, world_size))


def _require_int(name: str, value: int, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")


def _to_tensor(array: np.ndarray) -> torch.Tensor:
    # Views of arrow-backed buffers can be read-only; torch wants writable memory.
    if not array.flags.writeable or not array.flags.c_contiguous:
        array = np.ascontiguousarray(array).copy()
    return torch.from_numpy(array)


# --------------------------------------------------------------------------------------------
# The dataset


class EmbeddingDataset:
    """An embedding dataset on disk (one Parquet file or a folder of them).

    Construction reads only the Parquet footers: it checks that every file is Parquet and has the
    required columns. Rows are validated while they are read.
    """

    def __init__(
        self, path: PathLike, *, skip_invalid: bool = False, expected_dim: int | None = None
    ) -> None:
        if expected_dim is not None:
            _require_int("expected_dim", expected_dim, 1)
        self.path = Path(path)
        self.skip_invalid = bool(skip_invalid)
        self.expected_dim = expected_dim
        self._meta = tuple(_open_file(p, self.path) for p in _discover(self.path))
        self.files: tuple[Path, ...] = tuple(m.path for m in self._meta)
        # Fixed once known: the first valid row in file order, found by whichever read comes first.
        self._dim: int | None = expected_dim
        self._info: DatasetInfo | None = None
        self._fragments: tuple[_Fragment, ...] | None = None

    def __repr__(self) -> str:
        return (
            f"EmbeddingDataset({str(self.path)!r}, files={len(self.files)}, "
            f"skip_invalid={self.skip_invalid})"
        )

    @property
    def metadata_columns(self) -> tuple[str, ...]:
        """Columns other than lat/lon/embedding/id, over all files, in first-seen order."""
        reserved = {*REQUIRED_COLUMNS, ID}
        seen: dict[str, None] = {}
        for meta in self._meta:
            seen.update((c, None) for c in meta.columns if c not in reserved)
        return tuple(seen)

    def fingerprint(self) -> str:
        """Cheap content fingerprint of the files as they are now (see :class:`DatasetInfo`)."""
        return _fingerprint(self._meta)

    # ---------------------------------------------------------------- reading

    def _read_rows(self) -> int:
        if self._dim is None:
            return _READ_ROWS_UNKNOWN_DIM
        return int(min(65536, max(256, _READ_BYTES // (4 * self._dim))))

    def _record_batches(
        self, meta: _FileMeta, row_group: int, columns: Sequence[str]
    ) -> Iterator[pa.RecordBatch]:
        try:
            with pq.ParquetFile(meta.path, metadata=meta.metadata) as parquet:
                yield from parquet.iter_batches(
                    batch_size=self._read_rows(), row_groups=[row_group], columns=list(columns)
                )
        except (pa.ArrowException, OSError) as exc:
            message = f"{meta.path}: failed to read row group {row_group} ({exc})"
            raise DatasetError(message) from exc

    def _handle_invalid(
        self,
        meta: _FileMeta,
        batch: pa.RecordBatch,
        checked: _Checked,
        first_row: int,
        report: _SkipReport | None,
    ) -> None:
        """Raise for the first invalid row, or count invalid rows and describe the first few."""
        bad = np.flatnonzero(~checked.valid)
        if not bad.size:
            return
        if not self.skip_invalid:
            index = int(bad[0])
            reason = _row_reason(batch, index, self._dim)
            raise InvalidRowError(meta.path, first_row + index, reason)
        if report is None:
            return
        report.count += int(bad.size)
        for index in bad[: max(0, MAX_SKIPPED_EXAMPLES - len(report.examples))]:
            reason = _row_reason(batch, int(index), self._dim)
            report.examples.append(_row_message(meta.path, first_row + int(index), reason))

    def _read_fragment(
        self,
        file_index: int,
        row_group: int,
        columns: Sequence[str],
        report: _SkipReport | None = None,
    ) -> Iterator[tuple[pa.RecordBatch, _Checked, int]]:
        """Validated record batches of one row group as ``(batch, checked, first_row)``, where
        ``first_row`` is the row number in the file of the batch's row 0."""
        meta = self._meta[file_index]
        first_row = meta.row_group_offsets[row_group]
        for batch in self._record_batches(meta, row_group, columns):
            if self._dim is None:
                self._dim = _find_dim(batch)
            checked = _check_batch(batch, self._dim)
            self._handle_invalid(meta, batch, checked, first_row, report)
            yield batch, checked, first_row
            first_row += batch.num_rows

    def _all_fragments(self) -> Iterator[tuple[int, int]]:
        for file_index, meta in enumerate(self._meta):
            for row_group in range(meta.metadata.num_row_groups):
                yield file_index, row_group

    def _total_rows(self) -> int:
        return sum(m.metadata.num_rows for m in self._meta)

    # ---------------------------------------------------------------- scan

    def scan(self, progress: bool = False) -> DatasetInfo:
        """Validate every row and count rows; cached after the first successful call.

        Streams row group by row group and reads only the ``lat``, ``lon`` and ``embedding``
        columns. Raises :class:`InvalidRowError` on the first invalid row unless
        ``skip_invalid``, and :class:`DatasetError` when no row is valid.
        """
        if self._info is not None:
            return self._info
        report = _SkipReport()
        fragments: list[_Fragment] = []
        num_rows = 0
        with tqdm(total=self._total_rows(), disable=not progress, unit="row", desc="scan") as bar:
            for file_index, row_group in self._all_fragments():
                num_valid = 0
                batches = self._read_fragment(file_index, row_group, REQUIRED_COLUMNS, report)
                for batch, checked, _ in batches:
                    num_valid += len(checked.rows)
                    num_rows += batch.num_rows
                    bar.update(batch.num_rows)
                fragments.append(_Fragment(file_index, row_group, num_valid))
        num_valid = sum(f.num_valid for f in fragments)
        if num_valid == 0 or self._dim is None:
            raise DatasetError(
                f"{self.path}: dataset has no valid rows "
                f"({num_rows} rows read, {report.count} invalid)"
            )
        self._fragments = tuple(fragments)
        self._info = DatasetInfo(
            files=tuple(str(p) for p in self.files),
            num_rows=num_rows,
            num_valid=num_valid,
            num_skipped=report.count,
            dim=self._dim,
            fingerprint=self.fingerprint(),
            skipped_examples=tuple(report.examples),
        )
        return self._info

    # ---------------------------------------------------------------- in-order batches

    def iter_batches(
        self, batch_size: int, *, metadata: bool = False, progress: bool = False
    ) -> Iterator[Batch]:
        """Every valid row once, in file order, as :class:`Batch` es of ``batch_size`` rows (the
        last may be smaller). Streams; invalid rows raise or are skipped per ``skip_invalid``.
        With ``metadata=True`` the other columns come along in ``Batch.metadata`` (``None`` for
        rows of files that lack a column)."""
        _require_int("batch_size", batch_size, 1)
        names = self.metadata_columns if metadata else ()
        return self._iter_batches(batch_size, names, progress)

    def _iter_batches(
        self, batch_size: int, names: tuple[str, ...], progress: bool
    ) -> Iterator[Batch]:
        with tqdm(total=self._total_rows(), disable=not progress, unit="row", desc="read") as bar:
            chunks = self._ordered_chunks(names, bar)
            for embedding, latlon, ids, *columns in _rebatch(chunks, batch_size, keep_last=True):
                extra = dict(zip(names, map(list, columns)))
                yield Batch(_to_tensor(embedding), _to_tensor(latlon), list(ids), extra)

    def _ordered_chunks(self, names: tuple[str, ...], bar: tqdm) -> Iterator[tuple[Any, ...]]:
        for file_index, row_group in self._all_fragments():
            meta = self._meta[file_index]
            wanted = [*REQUIRED_COLUMNS, *(c for c in (ID, *names) if c in meta.columns)]
            for batch, checked, first_row in self._read_fragment(file_index, row_group, wanted):
                bar.update(batch.num_rows)
                if not len(checked.rows):
                    continue
                ids = _row_ids(batch, checked.rows, first_row, meta)
                extra = [_column_values(batch, name, checked.rows) for name in names]
                yield (checked.embedding, checked.latlon, ids, *extra)

    # ---------------------------------------------------------------- training batches

    def train_batches(
        self,
        batch_size: int,
        *,
        seed: int,
        rank: int = 0,
        world_size: int = 1,
        start_batch: int = 0,
        shuffle_buffer: int = 262144,
        cache_bytes: int = 2 * 2**30,
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Infinite, deterministic stream of shuffled ``(embedding (B, D) float32, latlon (B, 2)
        float64)`` batches for one rank.

        The rank's stream is the concatenation of its share of epoch 0, 1, ... cut into batches of
        ``batch_size`` (batches may straddle epochs). Equal arguments give equal streams, and
        ``start_batch=k`` yields exactly batches ``k, k+1, ...`` of the ``start_batch=0`` stream.

        * Cached (all valid rows, ``D * 4 + 16`` bytes each, fit in ``cache_bytes``): rows are
          loaded once; epoch ``e`` is a permutation seeded by ``(seed, e)`` and rank ``r`` takes
          positions ``r, r + W, ...`` of it. Resuming jumps straight to the position.
        * Streamed: the (file, row group) fragments are permuted per epoch; with at least ``W``
          fragments rank ``r`` reads fragments ``r::W`` of that order, else rows ``r::W`` (among
          valid rows) of every fragment. Rows are gathered into buffers of ``shuffle_buffer`` rows,
          each permuted by a generator seeded by ``(seed, epoch, buffer)``. Resuming skips whole
          epochs and fragments using the scan's row counts and reads only from the fragment where
          the resumed buffer starts.

        Runs :meth:`scan` first (so invalid data fails here, not mid-training). Raises
        :class:`DatasetError` when the rank's share of an epoch would be empty (fewer valid rows
        than ranks).
        """
        _require_int("batch_size", batch_size, 1)
        _require_int("world_size", world_size, 1)
        _require_int("rank", rank, 0)
        _require_int("start_batch", start_batch, 0)
        _require_int("shuffle_buffer", shuffle_buffer, 1)
        _require_int("cache_bytes", cache_bytes, 0)
        _require_int("seed", seed, -(2**63))
        if rank >= world_size:
            raise ValueError(f"rank must be < world_size, got rank={rank}, world_size={world_size}")
        info = self.scan()
        start_row = start_batch * batch_size
        if info.num_valid * (4 * info.dim + _LATLON_BYTES) <= cache_bytes:
            if _shard_size(info.num_valid, rank, world_size) == 0:
                raise self._too_few_rows(info.num_valid, world_size)
            return self._cached_batches(batch_size, seed, rank, world_size, start_row)
        plan = _StreamPlan(self._valid_fragments(), seed, rank, world_size)
        if plan.epoch_rows(0) == 0:
            raise self._too_few_rows(info.num_valid, world_size)
        chunks = self._streamed_rows(plan, start_row, shuffle_buffer)
        batches = _rebatch(chunks, batch_size, keep_last=False)
        return ((_to_tensor(emb), _to_tensor(latlon)) for emb, latlon in batches)

    def _too_few_rows(self, num_valid: int, world_size: int) -> DatasetError:
        return DatasetError(
            f"{self.path}: {num_valid} valid rows cannot give each of {world_size} ranks a share"
        )

    def _valid_fragments(self) -> tuple[_Fragment, ...]:
        assert self._fragments is not None  # set by scan()
        return tuple(f for f in self._fragments if f.num_valid > 0)

    def _load_all(self) -> _Rows:
        """All valid rows in file order: ``(N, D)`` float32 and ``(N, 2)`` float64."""
        info = self.scan()
        embedding = np.empty((info.num_valid, info.dim), dtype=np.float32)
        latlon = np.empty((info.num_valid, 2), dtype=np.float64)
        filled = 0
        for fragment in self._valid_fragments():
            for checked in self._fragment_checks(fragment):
                k = len(checked.rows)
                if filled + k > info.num_valid:
                    raise DatasetError(f"{self.path}: files changed since they were scanned")
                embedding[filled : filled + k] = checked.embedding
                latlon[filled : filled + k] = checked.latlon
                filled += k
        if filled != info.num_valid:
            raise DatasetError(f"{self.path}: files changed since they were scanned")
        return embedding, latlon

    def _cached_batches(
        self, batch_size: int, seed: int, rank: int, world_size: int, start_row: int
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        embedding, latlon = self._load_all()
        num_rows = len(embedding)
        per_epoch = _shard_size(num_rows, rank, world_size)

        def positions() -> Iterator[tuple[np.ndarray]]:
            epoch, offset = divmod(start_row, per_epoch)
            while True:
                order = _rng(seed, _TAG_ROWS, epoch).permutation(num_rows)
                yield (order[rank::world_size][offset:],)
                epoch, offset = epoch + 1, 0

        # Batching the row indices first means each batch is a single gather from the cache.
        for (index,) in _rebatch(positions(), batch_size, keep_last=False):
            yield torch.from_numpy(embedding[index]), torch.from_numpy(latlon[index])

    def _fragment_checks(self, fragment: _Fragment) -> Iterator[_Checked]:
        batches = self._read_fragment(fragment.file_index, fragment.row_group, REQUIRED_COLUMNS)
        return (checked for _, checked, _ in batches)

    def _streamed_rows(
        self, plan: _StreamPlan, start_row: int, buffer_rows: int
    ) -> Iterator[_Rows]:
        """The rank's shuffled rows from position ``start_row`` on, as ``(emb, latlon)`` chunks."""
        epoch, offset = plan.locate(start_row)
        while True:
            fragments = plan.epoch(epoch)
            total = sum(rows for _, rows in fragments)
            first_buffer = offset // buffer_rows
            queue = _RowQueue(self._plan_rows(plan, fragments, first_buffer * buffer_rows))
            for buffer in range(first_buffer, -(-total // buffer_rows)):
                size = min(buffer_rows, total - buffer * buffer_rows)
                piece = queue.take(size)
                if piece is None or len(piece[0]) != size:
                    raise DatasetError(f"{self.path}: files changed since they were scanned")
                embedding, latlon = piece
                order = _rng(plan.seed, _TAG_BUFFER, epoch, buffer).permutation(size)
                start = offset - buffer * buffer_rows if buffer == first_buffer else 0
                for a in range(start, size, _EMIT_ROWS):
                    index = order[a : a + _EMIT_ROWS]
                    yield embedding[index], latlon[index]
            epoch, offset = epoch + 1, 0

    def _plan_rows(
        self, plan: _StreamPlan, fragments: list[tuple[_Fragment, int]], skip: int
    ) -> Iterator[_Rows]:
        """The rank's rows of one epoch in fragment order, without the first ``skip``: fragments
        entirely skipped are not read at all."""
        for fragment, rows in fragments:
            if skip >= rows:
                skip -= rows
                continue
            for embedding, latlon in self._fragment_rank_rows(fragment, plan):
                if skip >= len(embedding):
                    skip -= len(embedding)
                    continue
                yield embedding[skip:], latlon[skip:]
                skip = 0

    def _fragment_rank_rows(self, fragment: _Fragment, plan: _StreamPlan) -> Iterator[_Rows]:
        seen = 0  # valid rows of this fragment before the current batch
        for checked in self._fragment_checks(fragment):
            embedding, latlon = checked.embedding, checked.latlon
            if not plan.by_fragment:
                # Keep valid rows j of the fragment with j % W == rank.
                first = (plan.rank - seen) % plan.world_size
                step = plan.world_size
                embedding, latlon = embedding[first::step], latlon[first::step]
            seen += len(checked.rows)
            if len(embedding):
                yield embedding, latlon


class _StreamPlan:
    """Which fragments, and how many of their rows, one rank reads in each epoch of streaming."""

    def __init__(
        self, fragments: Sequence[_Fragment], seed: int, rank: int, world_size: int
    ) -> None:
        self.fragments = tuple(fragments)
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.by_fragment = len(self.fragments) >= world_size

    def epoch(self, epoch: int) -> list[tuple[_Fragment, int]]:
        """``(fragment, rows this rank takes from it)`` in reading order for ``epoch``."""
        order = _rng(self.seed, _TAG_FRAGMENTS, epoch).permutation(len(self.fragments))
        chosen = [self.fragments[i] for i in order]
        if self.by_fragment:
            return [(f, f.num_valid) for f in chosen[self.rank :: self.world_size]]
        return [(f, _shard_size(f.num_valid, self.rank, self.world_size)) for f in chosen]

    def epoch_rows(self, epoch: int) -> int:
        return sum(rows for _, rows in self.epoch(epoch))

    def locate(self, row: int) -> tuple[int, int]:
        """``(epoch, offset in that epoch)`` of the rank's ``row``-th streamed row."""
        if not self.by_fragment:
            # Every epoch gives this rank the same number of rows.
            return divmod(row, self.epoch_rows(0))
        epoch = 0
        while row >= (rows := self.epoch_rows(epoch)):
            row -= rows
            epoch += 1
        return epoch, row


def _row_ids(batch: pa.RecordBatch, rows: np.ndarray, first_row: int, meta: _FileMeta) -> list[str]:
    """String ids of the valid ``rows``; ``"<file stem>:<row>"`` where there is no id."""
    if ID in batch.schema.names:
        taken = batch.column(ID).take(pa.array(rows, type=pa.int64()))
        values = taken.cast(pa.string()).to_pylist()
        if None not in values:
            return values
    else:
        values = [None] * len(rows)
    stem = meta.stem
    return [v if v is not None else f"{stem}:{first_row + int(r)}" for v, r in zip(values, rows)]


def _column_values(batch: pa.RecordBatch, name: str, rows: np.ndarray) -> list[Any]:
    if name not in batch.schema.names:
        return [None] * len(rows)
    return batch.column(name).take(pa.array(rows, type=pa.int64())).to_pylist()


# --------------------------------------------------------------------------------------------
# Writing


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
            pq.write_table(table, fh, row_group_size=row_group_size)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(temporary, target)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return target
