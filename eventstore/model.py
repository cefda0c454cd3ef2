"""The event store's data model: what goes in (NewEvent) and what comes out (RecordedEvent).

Positions are the store's consistency token: one integer per event, strictly increasing
in the order readers see events (commit order). They are not dense: a reader must never
assume ``position + 1`` is the next event. Stream versions are dense and start at 1.
"""

from __future__ import annotations

import enum
import os
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeAlias
from uuid import UUID

JsonObject: TypeAlias = dict[str, Any]


class StreamState(enum.Enum):
    """Expectations about a stream that are not an exact version."""

    ANY = "any"
    """Append whatever the stream's current version is."""

    NO_STREAM = "no_stream"
    """The stream must not exist yet (it has no events)."""


ANY = StreamState.ANY
NO_STREAM = StreamState.NO_STREAM

ExpectedVersion: TypeAlias = int | StreamState
"""An exact stream version (0 means the stream has no events), ANY or NO_STREAM."""


class _EventIds:
    """Time-ordered UUIDs (version 7, RFC 9562), strictly increasing within a process.

    48 bits of Unix milliseconds, then a 74-bit counter that starts at a random value
    each millisecond and counts up within it. Ids made later sort later, so the store's
    unique index on event ids grows at its right edge (PostgreSQL then skips the search
    down the tree) instead of at random places; uniqueness across processes comes from
    the random start.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._millis = 0
        self._counter = 0

    def __call__(self) -> UUID:
        millis = time.time_ns() // 1_000_000
        # A random start only for a new millisecond (os.urandom is a system call), drawn
        # outside the lock. The last millisecond never goes back, so a start is drawn
        # whenever the branch below needs it.
        start = _random_start() if millis > self._millis else 0
        with self._lock:
            # Under the lock, "one more than the last" is unique across threads too.
            if millis > self._millis:
                self._millis, self._counter = millis, start
            else:
                self._counter += 1
                if self._counter >> 74:  # counted past 74 bits: borrow the next millisecond
                    self._millis, self._counter = self._millis + 1, _random_start()
            millis, counter = self._millis, self._counter
        high = counter >> 62  # 12 bits (rand_a), then version 7 sits above them
        value = millis << 80 | 0x7 << 76 | high << 64 | 0x2 << 62 | counter & (1 << 62) - 1
        return UUID(int=value)


def _random_start() -> int:
    return int.from_bytes(os.urandom(10), "big") >> 7  # 73 bits: room to count up


new_event_id = _EventIds()
"""Make a fresh event id (see :class:`_EventIds`)."""


def category_of(stream_id: str) -> str:
    """The stream's category: the part of its id before the first ``-``."""
    return stream_id.split("-", 1)[0]


@dataclass(frozen=True, slots=True)
class NewEvent:
    """An event to append. The id is fixed when the object is made, so a retry of the
    same append with the same objects is idempotent."""

    type: str
    data: Mapping[str, Any]
    metadata: Mapping[str, Any] = field(default_factory=dict)
    event_id: UUID = field(default_factory=new_event_id)


@dataclass(frozen=True, slots=True)
class RecordedEvent:
    """An event as stored: with its stream version, global position and record time."""

    event_id: UUID
    stream_id: str
    version: int
    position: int
    type: str
    data: JsonObject
    metadata: JsonObject
    recorded_at: datetime

    @property
    def category(self) -> str:
        return category_of(self.stream_id)


@dataclass(frozen=True, slots=True)
class AppendResult:
    """The outcome of an append: the stream's version and the last event's position after
    it, and the recorded events. ``replayed`` is true when every event was already stored
    (an idempotent retry) and nothing was written; the events are then the stored ones.
    Freshly written events carry (shallow copies of) the caller's data and metadata."""

    stream_id: str
    version: int
    position: int
    events: tuple[RecordedEvent, ...]
    replayed: bool = False
