"""Reading an embedding dataset: :class:`EmbeddingDataset` (scan, in-order batches, metadata)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from tqdm import tqdm

from . import sampler
from .chunks import _rebatch, _require_int, _to_tensor
from .schema import (
    ID,
    MAX_SKIPPED_EXAMPLES,
    REQUIRED_COLUMNS,
    Batch,
    DatasetError,
    DatasetInfo,
    InvalidRowError,
    PathLike,
    _Checked,
    _discover,
    _FileMeta,
    _fingerprint,
    _Fragment,
    _open_file,
    _row_message,
    _SkipReport,
)
from .validation import _check_batch, _find_dim, _row_reason

__all__ = ["EmbeddingDataset"]


# Decoded size aimed at for one Parquet record batch: large enough that per-batch overhead is
# negligible, small enough that a 4096-dim dataset still streams in a few tens of MB.
_READ_BYTES = 32 * 2**20
_READ_ROWS_UNKNOWN_DIM = 8192


class EmbeddingDataset:
    """An embedding dataset on disk (one Parquet file or a folder of them).

    Construction reads only the Parquet footers: it checks that every file is Parquet and has the
    required columns. Rows are validated while they are read.

    ``labels=False`` reads a dataset whose rows may have no location (``embed --unlabelled`` writes
    NaN lat/lon): such rows are valid, with NaN in ``Batch.latlon``; what needs the truth (train,
    evaluate, log-prob) reads with labels, what only needs embeddings (predict, map) without.
    """

    def __init__(
        self, path: PathLike, *, skip_invalid: bool = False, expected_dim: int | None = None,
        labels: bool = True,
    ) -> None:
        if expected_dim is not None:
            _require_int("expected_dim", expected_dim, 1)
        self.path = Path(path)
        self.skip_invalid = bool(skip_invalid)
        self.labels = bool(labels)
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
            with pq.ParquetFile(meta.path, metadata=meta.metadata, page_checksum_verification=True) as parquet:
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
            reason = _row_reason(batch, index, self._dim, self.labels)
            raise InvalidRowError(meta.path, first_row + index, reason)
        if report is None:
            return
        report.count += int(bad.size)
        for index in bad[: max(0, MAX_SKIPPED_EXAMPLES - len(report.examples))]:
            reason = _row_reason(batch, int(index), self._dim, self.labels)
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
            checked = _check_batch(batch, self._dim, self.labels)
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

    def train_batches(self, batch_size: int, *, seed: int, rank: int = 0, world_size: int = 1, start_batch: int = 0,
                      shuffle_buffer: int = 262144, cache_bytes: int = 2 * 2**30) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Shuffled training batches for one rank: see :func:`globeflow.data.embeddings.sampler.train_batches`."""
        return sampler.train_batches(self, batch_size, seed=seed, rank=rank, world_size=world_size,
                                     start_batch=start_batch, shuffle_buffer=shuffle_buffer, cache_bytes=cache_bytes)


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
