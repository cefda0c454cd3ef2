"""Fakes of our own EventStore interface: the real store, with one behaviour changed."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from eventstore import (
    AppendResult,
    ConcurrencyError,
    EventStore,
    ExpectedVersion,
    NewEvent,
    RecordedEvent,
)
from eventstore.migrations import Migration


class PausingStore(EventStore):
    """The real store, except that right after an append ``pause_after`` picks, the
    caller hangs forever (until cancelled): the process dies between two steps."""

    def __init__(self, inner: EventStore, pause_after: Callable[[str, str], bool]) -> None:
        self.inner = inner
        self.limits = inner.limits
        self.pause_after = pause_after
        self.paused = asyncio.Event()

    async def append(
        self, stream_id: str, events: Sequence[NewEvent], expected_version: ExpectedVersion = 0
    ) -> AppendResult:
        result = await self.inner.append(stream_id, events, expected_version)
        if self.pause_after(stream_id, events[0].type):
            self.paused.set()
            await asyncio.Event().wait()
        return result

    async def read_stream(self, *args: Any, **kwargs: Any) -> list[RecordedEvent]:
        return await self.inner.read_stream(*args, **kwargs)

    async def read_all(self, *args: Any, **kwargs: Any) -> list[RecordedEvent]:
        return await self.inner.read_all(*args, **kwargs)

    async def head_position(self) -> int:
        return await self.inner.head_position()

    async def stream_version(self, stream_id: str) -> int:
        return await self.inner.stream_version(stream_id)

    async def load_checkpoint(self, name: str) -> int:
        return await self.inner.load_checkpoint(name)

    async def save_checkpoint(self, name: str, position: int) -> None:
        await self.inner.save_checkpoint(name, position)

    async def ping(self) -> None:
        await self.inner.ping()

    async def migrate(self, migrations: Iterable[Migration]) -> list[Migration]:
        return await self.inner.migrate(migrations)

    async def wait_for_append(self, max_wait: float) -> None:
        await self.inner.wait_for_append(max_wait)

    async def close(self) -> None:
        return None


class CountingStore(PausingStore):
    """The real store, counting the events it hands out by stream reads."""

    def __init__(self, inner: EventStore) -> None:
        super().__init__(inner, lambda stream, kind: False)
        self.events_read = 0
        self.stream_reads = 0

    async def read_stream(self, *args: Any, **kwargs: Any) -> list[RecordedEvent]:
        events = await self.inner.read_stream(*args, **kwargs)
        self.stream_reads += 1
        self.events_read += len(events)
        return events


class ConflictingStore(PausingStore):
    """The real store, except that every append loses a race."""

    def __init__(self, inner: EventStore) -> None:
        super().__init__(inner, lambda stream, kind: False)

    async def append(self, stream_id: str, events: Any, expected_version: Any = 0) -> Any:
        raise ConcurrencyError(stream_id, expected_version, 99)


class BrokenTransferFeed(PausingStore):
    """The real store, except that reading the log for transfers (the transfer
    manager's feed) fails while ``broken``."""

    def __init__(self, inner: EventStore) -> None:
        super().__init__(inner, lambda stream, kind: False)
        self.broken = True

    async def read_all(self, *args: Any, **kwargs: Any) -> list[RecordedEvent]:
        if self.broken and "transfer" in (kwargs.get("categories") or ()):
            raise RuntimeError("the log cannot be read for transfers")
        return await self.inner.read_all(*args, **kwargs)
