"""What a projection is: a name, the event types it handles, its tables, and an apply
step that folds a batch of events into those tables inside the caller's transaction.

The runner (:mod:`projections.runner`) owns the transaction, the checkpoint and the
acknowledgements; a projection only turns events into row changes. ``apply`` must be
deterministic in the events it is given (no clock, no randomness), so replaying the log
rebuilds exactly what live processing built.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import ClassVar

from sqlalchemy import Table
from sqlalchemy.ext.asyncio import AsyncConnection

from commands.events import DomainEvent, decode_stored
from eventstore import RecordedEvent
from projections.tables import TableFactory, Tables, build


@dataclass(frozen=True, slots=True)
class Applied:
    """One event handed to :meth:`Projection.apply`: as recorded, and decoded through
    the published contract (upcast to the current schema version)."""

    record: RecordedEvent
    event: DomainEvent
    at: str
    """The record time as ISO 8601 UTC text (how the read models store time)."""

    @property
    def position(self) -> int:
        return self.record.position


def iso(moment: datetime) -> str:
    # The stores hand out UTC times already; converting those again only costs.
    utc = moment if moment.tzinfo is UTC else moment.astimezone(UTC)
    return utc.isoformat(timespec="microseconds")


def decode(record: RecordedEvent) -> Applied:
    """Raises commands.events.EventContractError when the event cannot be read."""
    return Applied(record, decode_stored(record), iso(record.recorded_at))


class Projection(abc.ABC):
    """A read model built from the log."""

    name: ClassVar[str]
    """Stable: names the checkpoint row, the broker queue and the CLI argument."""

    handles: ClassVar[frozenset[str]]
    """Event types ``apply`` is given; the checkpoint moves over every other event."""

    table_factories: ClassVar[Mapping[str, TableFactory]]
    """The tables this projection owns, by logical name."""

    def tables(self, suffix: str = "") -> dict[str, Table]:
        """This projection's tables, live (no suffix) or shadow (a replay's suffix)."""
        return build(self.table_factories, suffix)

    @abc.abstractmethod
    async def apply(self, conn: AsyncConnection, tables: Tables, batch: Sequence[Applied]) -> None:
        """Fold ``batch`` (in position order, all of handled types) into ``tables``.

        Runs inside the runner's transaction; raising rolls back the whole batch.
        """
