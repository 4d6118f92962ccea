"""A bounded work queue: at most ``max_pending`` requests hold a slot (reading their upload, waiting, or
being answered), and the model runs on one worker thread.

Why bounded: each slot may hold an upload of up to the size limit and, once running, the model's
working memory; refusing the next request with 503 (``Busy``) keeps a burst of requests from
exhausting memory, while the event loop stays free to answer health checks and errors.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import Any, TypeVar

__all__ = ["Busy", "WorkQueue"]

T = TypeVar("T")


class Busy(Exception):
    """Every slot of the queue is taken."""


class WorkQueue:
    """Slots for requests and one thread for the work (the model is not shared across threads).

    Only the event loop's thread touches ``pending``, so no lock is needed.
    """

    def __init__(self, max_pending: int, workers: int = 1):
        if max_pending < 1:
            raise ValueError(f"max_pending must be >= 1, got {max_pending}")
        self.max_pending = max_pending
        self.pending = 0
        self.completed = 0
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="globeflow-work")

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Hold one slot for a request's whole life; :class:`Busy` when none is free."""
        if self.pending >= self.max_pending:
            raise Busy(f"{self.pending} requests in progress (the limit)")
        self.pending += 1
        try:
            yield
        finally:
            self.pending -= 1

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(*args)`` on the worker thread and wait for it."""
        result = await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)
        self.completed += 1
        return result

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
