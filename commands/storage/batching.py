"""Merging concurrent calls into one database statement (group commit).

Each statement is a round trip, and on a busy server the round trips, not the rows,
are what cost. A :class:`Batcher` sends a lone call at once; while ``limit`` statements
are in flight, further calls queue, and when one finishes everything queued goes out
together in the next statement.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class Batcher(Generic[T, R]):
    """``submit(item)`` returns ``flush([..., item, ...])[its index]``.

    ``flush`` must return one result per item, in order; when it raises, every item of
    its batch gets the error.
    """

    def __init__(self, flush: Callable[[list[T]], Awaitable[Sequence[R]]], *, limit: int = 2):
        self._flush = flush
        self._limit = limit
        self._queue: list[tuple[T, asyncio.Future[R]]] = []
        self._in_flight = 0
        self._tasks: set[asyncio.Task[None]] = set()

    async def submit(self, item: T) -> R:
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._queue.append((item, future))
        self._start()
        return await future

    def _start(self) -> None:
        while self._queue and self._in_flight < self._limit:
            batch, self._queue = self._queue, []
            self._in_flight += 1
            # Kept until done; its outcome reaches the callers through their futures.
            task = asyncio.create_task(self._run(batch))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _run(self, batch: list[tuple[T, asyncio.Future[R]]]) -> None:
        try:
            results = await self._flush([item for item, _ in batch])
        except BaseException as exc:
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
        else:
            for (_, future), result in zip(batch, results, strict=True):
                if not future.done():
                    future.set_result(result)
        finally:
            self._in_flight -= 1
            self._start()

    async def close(self) -> None:
        """Cancel the statements in flight and wait for them."""
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task
