"""One asyncio lock per stream, created on demand and dropped when unused."""

from __future__ import annotations

import asyncio
from types import TracebackType


class StreamLocks:
    """Serialises the commands on one stream within this process.

    What it protects: the read-decide-append-cache sequence of one stream. Without it,
    two concurrent commands on the same stream would both decide on the same cached
    version and one would lose the append race, paying a conflict and a retry; with it,
    conflicts happen only between processes. Streams never wait for each other.
    """

    def __init__(self) -> None:
        self._locks: dict[str, _Held] = {}

    def hold(self, stream_id: str) -> _Held:
        """``async with locks.hold(stream_id):`` runs the block alone for that stream."""
        held = self._locks.get(stream_id)
        if held is None:
            held = self._locks[stream_id] = _Held(self, stream_id)
        held.users += 1
        return held

    def _release(self, held: _Held) -> None:
        held.users -= 1
        if held.users == 0:
            del self._locks[held.stream_id]

    def __len__(self) -> int:
        return len(self._locks)


class _Held:
    """The lock of one stream and how many commands use or await it."""

    __slots__ = ("lock", "owner", "stream_id", "users")

    def __init__(self, owner: StreamLocks, stream_id: str) -> None:
        self.owner = owner
        self.stream_id = stream_id
        self.lock = asyncio.Lock()
        self.users = 0

    async def __aenter__(self) -> None:
        try:
            await self.lock.acquire()
        except BaseException:
            self.owner._release(self)
            raise

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.lock.release()
        self.owner._release(self)
