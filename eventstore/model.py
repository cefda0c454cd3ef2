"""The event store's data model: what goes in (NewEvent) and what comes out (RecordedEvent).

Positions are the store's consistency token: one integer per event, strictly increasing
in the order readers see events (commit order). They are not dense: a reader must never
assume ``position + 1`` is the next event. Stream versions are dense and start at 1.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeAlias
from uuid import UUID, uuid4

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
    event_id: UUID = field(default_factory=uuid4)


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
