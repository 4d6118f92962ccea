"""Re-chunking of row streams and the small helpers of shuffled reading."""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import numpy as np
import torch

__all__: list[str] = []  # private helpers of the embedding dataset modules


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
