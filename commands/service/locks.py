"""One asyncio lock per stream, created on demand and dropped when unused."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager


class StreamLocks:
    """Serialises the commands on one stream within this process.

    What it protects: the read-decide-append-cache sequence of one stream. Without it,
    two concurrent commands on the same stream would both decide on the same cached
    version and one would lose the append race, paying a conflict and a retry; with it,
    conflicts happen only between processes. Streams never wait for each other.
    """

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    @asynccontextmanager
    async def hold(self, stream_id: str) -> AsyncIterator[None]:
        lock, users = self._locks.get(stream_id, (None, 0))
        if lock is None:
            lock = asyncio.Lock()
        self._locks[stream_id] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[stream_id]
            if users == 1:
                del self._locks[stream_id]
            else:
                self._locks[stream_id] = (lock, users - 1)

    def __len__(self) -> int:
        return len(self._locks)
