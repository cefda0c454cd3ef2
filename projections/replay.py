"""Blue/green replay: rebuild a read model from position 0 into shadow tables while the
live one keeps serving, then swap them in atomically.

1. ``prepare``: drop any shadow tables an earlier, interrupted replay left, create them
   empty (``<table>__replay``) with a checkpoint row of their own.
2. ``rebuild``: apply the whole log to the shadow tables in large batches, each batch
   in one transaction with the shadow checkpoint (the live projector is not involved).
3. ``swap``: in ONE transaction, lock the live checkpoint (the live projector's commits
   wait on that lock), apply to the shadow whatever the live model had applied beyond
   the shadow's position, drop the live tables, rename the shadow tables into their
   place, and set the live checkpoint. Readers see the old model or the new one, never
   a mix; the live projector carries on from the swapped-in checkpoint.

Stopping at any point before the swap commits leaves the live model as it was; running
the replay again starts over.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy import MetaData, Table, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from eventstore import EventStore, RecordedEvent
from projections.apply import Applier
from projections.checkpoints import (
    delete_checkpoint,
    ensure_checkpoint,
    lock_checkpoint,
    save_checkpoint,
)
from projections.collector import older_objects_frozen
from projections.errors import ReplayError
from projections.projection import Projection, decode
from projections.tables import REPLAY_SUFFIX


class Progress(Protocol):
    """How a replay reports progress (the CLI draws a bar with it)."""

    def started(self, projection: str, head: int) -> None: ...

    def advanced(self, events: int, position: int) -> None: ...

    def swapped(self, position: int) -> None: ...


class _Silent:
    def started(self, projection: str, head: int) -> None:
        return None

    def advanced(self, events: int, position: int) -> None:
        return None

    def swapped(self, position: int) -> None:
        return None


@dataclass(frozen=True, slots=True)
class ReplayResult:
    projection: str
    events: int
    position: int
    seconds: float

    @property
    def events_per_second(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0


class Replay:
    """One replay of ``projection`` from the log in ``store`` into ``engine``."""

    def __init__(
        self,
        projection: Projection,
        engine: AsyncEngine,
        store: EventStore,
        *,
        batch_size: int = 5000,
        progress: Progress | None = None,
    ) -> None:
        self.projection = projection
        self.engine = engine
        self.store = store
        self.batch_size = batch_size
        self.progress = progress or _Silent()
        self.live = projection.tables()
        self.shadow = projection.tables(REPLAY_SUFFIX)
        self.shadow_checkpoint = f"{projection.name}{REPLAY_SUFFIX}"
        self.applier = Applier(
            projection, engine, tables=self.shadow, checkpoint=self.shadow_checkpoint
        )
        self.events = 0
        self.position = 0

    async def run(self, stop: asyncio.Event | None = None) -> ReplayResult:
        """Prepare, rebuild and swap. Raises ReplayError when ``stop`` is set first (the
        live model is then untouched)."""
        started = time.perf_counter()
        await self.prepare()
        await self.rebuild(stop)
        position = await self.swap()
        self.progress.swapped(position)
        return ReplayResult(
            self.projection.name, self.events, position, time.perf_counter() - started
        )

    async def prepare(self) -> None:
        async with self.engine.begin() as conn:
            await ensure_checkpoint(conn, self.projection.name)
            await _drop(conn, self.shadow.values())
            await conn.run_sync(_metadata_of(self.shadow).create_all)
            await delete_checkpoint(conn, self.shadow_checkpoint)
            await ensure_checkpoint(conn, self.shadow_checkpoint)

    async def rebuild(self, stop: asyncio.Event | None = None) -> int:
        """Apply the log up to its head (as of each read) to the shadow tables."""
        head = await self.store.head_position()
        self.progress.started(self.projection.name, head)
        with older_objects_frozen():
            return await self._apply_log(stop)

    async def _apply_log(self, stop: asyncio.Event | None) -> int:
        batch = await self.store.read_all(0, self.batch_size)
        while batch:
            if stop is not None and stop.is_set():
                raise ReplayError(f"replay of {self.projection.name} interrupted; live untouched")
            # Read the next batch while this one is applied: the store and the read
            # database work at the same time.
            after = batch[-1].position
            reading = asyncio.ensure_future(self.store.read_all(after, self.batch_size))
            try:
                self.position = await self.applier.commit(batch)
            except BaseException:
                reading.cancel()
                raise
            self.events += len(batch)
            self.progress.advanced(len(batch), self.position)
            batch = await reading
        return self.position

    async def swap(self) -> int:
        """Swap the shadow tables in; return the live checkpoint after the swap."""
        async with self.engine.begin() as conn:
            live = await lock_checkpoint(conn, self.projection.name)
            shadow = await lock_checkpoint(conn, self.shadow_checkpoint)
            while shadow < live:
                shadow = await self._apply_inside(conn, shadow, live)
            await _drop(conn, self.live.values())
            for name, table in self.shadow.items():
                target = self.live[name].name
                await conn.execute(text(f'ALTER TABLE "{table.name}" RENAME TO "{target}"'))
                await _rename_primary_key(conn, target)
            await save_checkpoint(conn, self.projection.name, shadow)
            await delete_checkpoint(conn, self.shadow_checkpoint)
        return shadow

    async def _apply_inside(self, conn: AsyncConnection, after: int, until: int) -> int:
        """Apply events after ``after`` (at most up to ``until``) to the shadow tables in
        the swap's transaction; return the last position applied."""
        batch = await self.store.read_all(after, self.batch_size)
        records: Sequence[RecordedEvent] = [r for r in batch if r.position <= until]
        if not records:
            raise ReplayError(f"the log has no events after {after} up to {until}")
        handled = [decode(r) for r in records if r.type in self.projection.handles]
        if handled:
            await self.projection.apply(conn, self.shadow, handled)
        return records[-1].position


def _metadata_of(tables: dict[str, Table]) -> MetaData:
    return next(iter(tables.values())).metadata


async def _drop(conn: AsyncConnection, tables: Iterable[Table]) -> None:
    for table in tables:
        await conn.execute(text(f'DROP TABLE IF EXISTS "{table.name}"'))


async def _rename_primary_key(conn: AsyncConnection, table: str) -> None:
    """PostgreSQL names a primary key after the table it was created as; give the
    swapped-in table the usual name again, so the next replay's shadow gets its own."""
    if conn.dialect.name != "postgresql":
        return
    query = text(
        "SELECT conname FROM pg_constraint WHERE conrelid = CAST(:t AS regclass) AND contype = 'p'"
    )
    current = (await conn.execute(query, {"t": table})).scalar_one()
    if current != f"{table}_pkey":
        await conn.execute(
            text(f'ALTER TABLE "{table}" RENAME CONSTRAINT "{current}" TO "{table}_pkey"')
        )
