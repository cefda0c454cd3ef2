"""The event store interface that every backend implements.

The contract (checked by ``tests/contract`` against every backend):

* ``append`` is atomic: all events of one call are stored, or none.
* Stream versions are dense, start at 1, and are unique per stream.
* Positions strictly increase in the order ``read_all`` returns events, and that order
  never changes: a reader tailing ``read_all`` from its last position never skips a
  committed event and never sees one twice, however many writers run at once.
* Appending an event whose id is stored already, with the same stream, type and data,
  writes nothing and returns the recorded event; different content is EventIdConflict.
"""

from __future__ import annotations

import abc
import asyncio
import logging
from collections.abc import AsyncIterator, Collection, Iterable, Sequence
from dataclasses import dataclass

from eventstore.errors import StoreUnavailable
from eventstore.limits import Limits, check_non_negative, check_stream_id
from eventstore.migrations import Migration
from eventstore.model import ANY, AppendResult, ExpectedVersion, NewEvent, RecordedEvent

log = logging.getLogger(__name__)

_LAST_VERSION = 1 << 62
"""Above any stream version: where a backwards read starts by default."""


def stream_read_start(
    stream_id: str, from_version: int | None, backwards: bool, limit: int | None, limits: Limits
) -> int:
    """Check read_stream's arguments (InvalidStreamId, InvalidVersion); the version to
    start from."""
    check_stream_id(stream_id, limits)
    if limit is not None:
        check_non_negative("limit", limit)
    if from_version is None:
        return _LAST_VERSION if backwards else 1
    return check_non_negative("from_version", from_version)


def check_read_all(after_position: int, limit: int) -> None:
    """Check read_all's arguments (InvalidVersion)."""
    check_non_negative("after_position", after_position)
    check_non_negative("limit", limit)


@dataclass(frozen=True, slots=True)
class PollPolicy:
    """How a subscription waits for new events: back-off from ``min_delay`` to
    ``max_delay`` while the log is idle, reset as soon as an event arrives."""

    min_delay: float = 0.002
    max_delay: float = 0.25
    batch_size: int = 500


class EventStore(abc.ABC):
    """An append-only log of events, grouped into streams, in one global order."""

    limits: Limits

    @abc.abstractmethod
    async def append(
        self,
        stream_id: str,
        events: Sequence[NewEvent],
        expected_version: ExpectedVersion = ANY,
    ) -> AppendResult:
        """Append ``events`` to ``stream_id`` atomically.

        ``expected_version`` is an exact version (0 for an empty stream), NO_STREAM or
        ANY. Raises ConcurrencyError (carrying the current version) on a mismatch,
        EventIdConflict when an id is reused with other content, InvalidAppend subclasses
        for bad input, StoreUnavailable when the database cannot be reached.
        """

    @abc.abstractmethod
    async def read_stream(
        self,
        stream_id: str,
        from_version: int | None = None,
        *,
        backwards: bool = False,
        limit: int | None = None,
    ) -> list[RecordedEvent]:
        """Events of one stream by version: forwards from ``from_version`` (default 1),
        or backwards from it (default: the last event). An unknown stream is empty."""

    @abc.abstractmethod
    async def read_all(
        self,
        after_position: int = 0,
        limit: int = 1000,
        *,
        categories: Collection[str] | None = None,
        types: Collection[str] | None = None,
    ) -> list[RecordedEvent]:
        """Up to ``limit`` events after ``after_position`` in commit order, optionally
        only those of the given stream categories and event types."""

    @abc.abstractmethod
    async def head_position(self) -> int:
        """The position of the last event a reader can see now (0 for an empty log)."""

    @abc.abstractmethod
    async def stream_version(self, stream_id: str) -> int:
        """The stream's current version (0 when it has no events)."""

    @abc.abstractmethod
    async def load_checkpoint(self, name: str) -> int:
        """The position a follower named ``name`` saved last (0 if it never saved)."""

    @abc.abstractmethod
    async def save_checkpoint(self, name: str, position: int) -> None:
        """Durably record ``position`` for the follower ``name``. Saving a position lower
        than the stored one is refused with InvalidVersion: checkpoints never go back."""

    @abc.abstractmethod
    async def ping(self) -> None:
        """Return when the database answers; raise StoreUnavailable otherwise."""

    @abc.abstractmethod
    async def migrate(self, migrations: Iterable[Migration]) -> list[Migration]:
        """Apply the migrations this database lacks (see eventstore.migrations)."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Release connections. The store is unusable afterwards."""

    async def oldest_write_age(self) -> float:
        """Seconds the oldest open write transaction on the database has been running:
        readers of the log cannot see past it (the read fence, docs/eventstore.md).
        0.0 when none is open or the backend has no such fence. Raises
        StoreUnavailable when the database cannot be reached."""
        return 0.0

    async def wait_for_position(self, position: int, max_wait: float) -> bool:
        """Wait until ``read_all`` can see ``position`` (the head has reached it); False
        when ``max_wait`` seconds pass first.

        An appended event is readable once every older transaction has ended (see
        docs/eventstore.md), so a reader that must see its own append waits here.
        """
        check_non_negative("position", position)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max_wait
        policy = PollPolicy()
        delay = policy.min_delay
        while await self.head_position() < position:
            left = deadline - loop.time()
            if left <= 0:
                return False
            await self.wait_for_append(min(delay, left))
            delay = min(delay * 2, policy.max_delay)
        return True

    async def wait_for_append(self, max_wait: float) -> None:
        """Wait up to ``max_wait`` seconds, or less when this process appended meanwhile.

        Backends override this to wake subscribers early; polling covers writers in
        other processes.
        """
        await asyncio.sleep(max_wait)

    async def subscribe(
        self,
        after_position: int = 0,
        *,
        categories: Collection[str] | None = None,
        types: Collection[str] | None = None,
        poll: PollPolicy | None = None,
    ) -> AsyncIterator[RecordedEvent]:
        """Catch up from ``after_position``, then follow the log live, forever.

        Yields events in commit order with strictly increasing positions. Transient
        StoreUnavailable errors are retried with the same back-off; cancel the consuming
        task to stop.
        """
        policy = poll or PollPolicy()
        position = check_non_negative("after_position", after_position)
        delay = policy.min_delay
        while True:
            try:
                batch = await self.read_all(
                    position, policy.batch_size, categories=categories, types=types
                )
            except StoreUnavailable as exc:
                # The log is the source of truth: keep trying from the same position
                # rather than ending the subscription; the back-off bounds the load.
                log.warning("event store unavailable, retrying subscription: %s", exc)
                batch = []
            for event in batch:
                yield event
                position = event.position
            if len(batch) == policy.batch_size:
                delay = policy.min_delay
                continue
            if batch:
                delay = policy.min_delay
            await self.wait_for_append(delay)
            delay = min(delay * 2, policy.max_delay)

    async def __aenter__(self) -> EventStore:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()
