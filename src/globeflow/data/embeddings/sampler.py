"""Training batches: an infinite, deterministic, shuffled stream of rows for each rank.

In memory when the dataset fits in ``cache_bytes``, else streamed from shuffled row groups through a
shuffle buffer. Equal arguments give equal streams, and a stream resumed at batch ``k`` is the tail of
the stream from batch 0 (how a resumed training run repeats the uninterrupted one exactly).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch

from .chunks import _rebatch, _require_int, _rng, _RowQueue, _shard_size, _to_tensor
from .schema import REQUIRED_COLUMNS, DatasetError, _Checked, _Fragment

if TYPE_CHECKING:
    from .reader import EmbeddingDataset

__all__ = ["train_batches"]

_Rows = tuple[np.ndarray, np.ndarray]  # (embedding (k, D) float32, latlon (k, 2) float64)
# Rows handed on at a time from a shuffled buffer or the cache, so no full second copy is made.
_EMIT_ROWS = 8192
# Bytes one cached row costs besides its embedding: lat and lon as float64.
_LATLON_BYTES = 16
# Domain tags keep the random streams of the different shuffling stages independent.
_TAG_ROWS, _TAG_FRAGMENTS, _TAG_BUFFER = 0, 1, 2


def train_batches(
    dataset: EmbeddingDataset,
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
    info = dataset.scan()
    start_row = start_batch * batch_size
    if info.num_valid * (4 * info.dim + _LATLON_BYTES) <= cache_bytes:
        if _shard_size(info.num_valid, rank, world_size) == 0:
            raise _too_few_rows(dataset, info.num_valid, world_size)
        return _cached_batches(dataset, batch_size, seed, rank, world_size, start_row)
    plan = _StreamPlan(_valid_fragments(dataset), seed, rank, world_size)
    if plan.epoch_rows(0) == 0:
        raise _too_few_rows(dataset, info.num_valid, world_size)
    chunks = _streamed_rows(dataset, plan, start_row, shuffle_buffer)
    batches = _rebatch(chunks, batch_size, keep_last=False)
    return ((_to_tensor(emb), _to_tensor(latlon)) for emb, latlon in batches)


def _too_few_rows(dataset: EmbeddingDataset, num_valid: int, world_size: int) -> DatasetError:
    return DatasetError(
        f"{dataset.path}: {num_valid} valid rows cannot give each of {world_size} ranks a share"
    )


def _valid_fragments(dataset: EmbeddingDataset) -> tuple[_Fragment, ...]:
    assert dataset._fragments is not None  # set by scan()
    return tuple(f for f in dataset._fragments if f.num_valid > 0)


def _load_all(dataset: EmbeddingDataset) -> _Rows:
    """All valid rows in file order: ``(N, D)`` float32 and ``(N, 2)`` float64."""
    info = dataset.scan()
    embedding = np.empty((info.num_valid, info.dim), dtype=np.float32)
    latlon = np.empty((info.num_valid, 2), dtype=np.float64)
    filled = 0
    for fragment in _valid_fragments(dataset):
        for checked in _fragment_checks(dataset, fragment):
            k = len(checked.rows)
            if filled + k > info.num_valid:
                raise DatasetError(f"{dataset.path}: files changed since they were scanned")
            embedding[filled : filled + k] = checked.embedding
            latlon[filled : filled + k] = checked.latlon
            filled += k
    if filled != info.num_valid:
        raise DatasetError(f"{dataset.path}: files changed since they were scanned")
    return embedding, latlon


def _cached_batches(
    dataset: EmbeddingDataset, batch_size: int, seed: int, rank: int, world_size: int, start_row: int
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    embedding, latlon = _load_all(dataset)
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


def _fragment_checks(dataset: EmbeddingDataset, fragment: _Fragment) -> Iterator[_Checked]:
    batches = dataset._read_fragment(fragment.file_index, fragment.row_group, REQUIRED_COLUMNS)
    return (checked for _, checked, _ in batches)


def _streamed_rows(
    dataset: EmbeddingDataset, plan: _StreamPlan, start_row: int, buffer_rows: int
) -> Iterator[_Rows]:
    """The rank's shuffled rows from position ``start_row`` on, as ``(emb, latlon)`` chunks."""
    epoch, offset = plan.locate(start_row)
    while True:
        fragments = plan.epoch(epoch)
        total = sum(rows for _, rows in fragments)
        first_buffer = offset // buffer_rows
        queue = _RowQueue(_plan_rows(dataset, plan, fragments, first_buffer * buffer_rows))
        for buffer in range(first_buffer, -(-total // buffer_rows)):
            size = min(buffer_rows, total - buffer * buffer_rows)
            piece = queue.take(size)
            if piece is None or len(piece[0]) != size:
                raise DatasetError(f"{dataset.path}: files changed since they were scanned")
            embedding, latlon = piece
            order = _rng(plan.seed, _TAG_BUFFER, epoch, buffer).permutation(size)
            start = offset - buffer * buffer_rows if buffer == first_buffer else 0
            for a in range(start, size, _EMIT_ROWS):
                index = order[a : a + _EMIT_ROWS]
                yield embedding[index], latlon[index]
        epoch, offset = epoch + 1, 0


def _plan_rows(
    dataset: EmbeddingDataset, plan: _StreamPlan, fragments: list[tuple[_Fragment, int]], skip: int
) -> Iterator[_Rows]:
    """The rank's rows of one epoch in fragment order, without the first ``skip``: fragments
    entirely skipped are not read at all."""
    for fragment, rows in fragments:
        if skip >= rows:
            skip -= rows
            continue
        for embedding, latlon in _fragment_rank_rows(dataset, fragment, plan):
            if skip >= len(embedding):
                skip -= len(embedding)
                continue
            yield embedding[skip:], latlon[skip:]
            skip = 0


def _fragment_rank_rows(dataset: EmbeddingDataset, fragment: _Fragment, plan: _StreamPlan) -> Iterator[_Rows]:
    seen = 0  # valid rows of this fragment before the current batch
    for checked in _fragment_checks(dataset, fragment):
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
