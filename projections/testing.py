"""A test helper for projections: feed events to a projection, assert on its tables.

It runs the projection's real apply step and checkpoint through the same
:class:`~projections.apply.Applier` the projector uses, on a private in-memory SQLite
database by default (or any read database URL), with no store and no broker::

    from commands.events import AccountOpened, MoneyDeposited, account_stream
    from projections.bank import AccountSummaryProjection
    from projections.testing import ProjectionTestbed

    async def test_a_deposit_raises_the_balance():
        async with ProjectionTestbed(AccountSummaryProjection()) as bed:
            await bed.feed(
                account_stream("a1"),
                AccountOpened(account_id="a1", owner="Ada"),
                MoneyDeposited(account_id="a1", amount=500),
            )
            assert (await bed.row("accounts", account_id="a1"))["balance"] == 500

Positions are handed out with gaps (like the real log's), stream versions densely per
stream, record times from a clock that advances one second per event unless given.
See docs/testing.md ("Testing projections").
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from commands.events import DomainEvent, encode
from eventstore import RecordedEvent
from projections.apply import Applier
from projections.checkpoints import read_checkpoint
from projections.db import ensure_schema, open_engine
from projections.projection import Projection

_EPOCH = datetime(2026, 1, 1, tzinfo=UTC)


class ProjectionTestbed:
    """One projection over a fresh read database; use it as ``async with``."""

    def __init__(
        self, projection: Projection, url: str = "sqlite://:memory:", *, position_step: int = 3
    ) -> None:
        self.projection = projection
        self.url = url
        self.position_step = position_step
        self.position = 0
        self.clock = _EPOCH
        self.versions: dict[str, int] = {}
        self.recorded: list[RecordedEvent] = []
        self._engine: AsyncEngine | None = None
        self._applier: Applier | None = None

    async def __aenter__(self) -> ProjectionTestbed:
        self._engine = open_engine(self.url, writer=True, memory_key=uuid.uuid4().hex)
        await ensure_schema(self.url, self._engine)
        self._applier = Applier(self.projection, self._engine)
        await self._applier.ensure_checkpoint()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._engine is not None:
            await self._engine.dispose()

    @property
    def engine(self) -> AsyncEngine:
        if self._engine is None:
            raise RuntimeError("use the testbed inside `async with`")
        return self._engine

    def record(
        self, stream_id: str, event: DomainEvent, *, at: datetime | None = None
    ) -> RecordedEvent:
        """``event`` as the log would record it next (nothing is applied)."""
        event_type, data, metadata = encode(event)
        self.position += self.position_step
        version = self.versions[stream_id] = self.versions.get(stream_id, 0) + 1
        self.clock = at or self.clock + timedelta(seconds=1)
        return RecordedEvent(
            uuid.uuid4(), stream_id, version, self.position, event_type, data, metadata, self.clock
        )

    async def feed(self, stream_id: str, *events: DomainEvent) -> int:
        """Record ``events`` on ``stream_id`` and apply them in one commit; return the
        checkpoint after it."""
        return await self.apply([self.record(stream_id, event) for event in events])

    async def apply(self, records: Sequence[RecordedEvent]) -> int:
        """Apply already-recorded events (e.g. read from a real store) in one commit."""
        if self._applier is None:
            raise RuntimeError("use the testbed inside `async with`")
        self.recorded.extend(records)
        return await self._applier.commit(records)

    async def rows(self, table: str, **where: Any) -> list[dict[str, Any]]:
        """The rows of the projection's table ``table`` (its logical name) matching the
        column values in ``where``, by primary key."""
        definition = self.projection.tables()[table]
        query = select(definition).order_by(*definition.primary_key.columns)
        for column, value in where.items():
            query = query.where(definition.c[column] == value)
        async with self.engine.connect() as conn:
            return [dict(row) for row in (await conn.execute(query)).mappings()]

    async def row(self, table: str, **key: Any) -> dict[str, Any] | None:
        """The one row matching ``key``, or None."""
        found = await self.rows(table, **key)
        if len(found) > 1:
            raise AssertionError(f"{len(found)} rows of {table} match {key}")
        return found[0] if found else None

    async def checkpoint(self) -> int:
        async with self.engine.connect() as conn:
            return await read_checkpoint(conn, self.projection.name)
