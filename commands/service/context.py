"""What travels with a command besides its data: who sent it, why, and its event ids."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from uuid import UUID, uuid5

from eventstore import RecordedEvent, new_event_id

EventIds = Callable[[int], UUID]
"""The id of the i-th event a command appends."""


def random_ids(_: int) -> UUID:
    """Fresh ids, for commands without an idempotency key: the store's time-ordered ids
    (they keep the unique index on event ids growing at its right edge)."""
    return new_event_id()


def derived_ids(seed: UUID) -> EventIds:
    """Ids derived from ``seed``: whoever runs the command again with the same seed
    appends events with the same ids, which the store recognises and never duplicates."""
    return lambda index: uuid5(seed, str(index))


@dataclass(frozen=True, slots=True)
class CommandContext:
    """Metadata recorded with every event of a command.

    ``actor`` is the authenticated subject; ``correlation_id`` groups everything one
    user action caused; ``causation_id`` names the message that caused this command
    (the HTTP request, or the event a process manager reacted to); ``traceparent`` is
    the W3C trace context of the request, when it had one.
    """

    actor: str
    correlation_id: str
    causation_id: str
    traceparent: str | None = None

    def metadata(self) -> dict[str, Any]:
        meta: dict[str, Any] = {
            "actor": self.actor,
            "correlation_id": self.correlation_id,
            "causation_id": self.causation_id,
        }
        if self.traceparent is not None:
            meta["traceparent"] = self.traceparent
        return meta

    def caused_by(self, event: RecordedEvent) -> CommandContext:
        """The context of a command a process manager sends in reaction to ``event``:
        same actor, correlation and trace; caused by that event."""
        meta = event.metadata
        return CommandContext(
            actor=str(meta.get("actor", self.actor)),
            correlation_id=str(meta.get("correlation_id", event.event_id)),
            causation_id=str(event.event_id),
            traceparent=meta.get("traceparent"),
        )


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a command wrote: the stream's version and position after it, and its events.

    ``replayed`` is true when every event was already stored (an idempotent retry).
    """

    stream_id: str
    version: int
    position: int
    events: tuple[RecordedEvent, ...]
    replayed: bool = False

    @classmethod
    def of(cls, events: list[RecordedEvent], *, replayed: bool) -> Outcome:
        last = events[-1]
        return cls(last.stream_id, last.version, last.position, tuple(events), replayed)
