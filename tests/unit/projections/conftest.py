"""A projector over the embedded backends: an SQLite file holding the log and the read
models, the in-process bus, a parking lot that records."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from commands.events import DomainEvent, encode
from eventstore import EventStore, NewEvent, RecordedEvent, open_event_store
from eventstore.bus import Envelope
from eventstore.bus import encode as envelope_of
from eventstore.bus.memory import MemoryBus
from projections.db import ensure_schema, open_engine
from projections.parking import MemoryParkingLot
from projections.projection import Projection
from projections.projector import Projector, queue_specs
from projections.runner import RunnerConfig

FAST = RunnerConfig(batch_size=50, prefetch=200, max_attempts=3, retry_delay=0.01)


async def eventually(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    """Wait until ``condition()`` holds; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.005)


@dataclass
class World:
    url: str
    store: EventStore
    engine: AsyncEngine
    bus: MemoryBus
    parking: MemoryParkingLot
    published: int = 0
    running: list[tuple[asyncio.Event, asyncio.Task[None]]] = field(default_factory=list)

    async def append(self, stream_id: str, *events: DomainEvent) -> list[RecordedEvent]:
        new = []
        for event in events:
            event_type, data, metadata = encode(event)
            new.append(NewEvent(event_type, data, metadata))
        result = await self.store.append(stream_id, new)
        return list(result.events)

    def envelopes(self, records: Sequence[RecordedEvent]) -> list[Envelope]:
        """What the relay would publish for ``records`` (following ``self.published``)."""
        out = []
        for record in records:
            out.append(envelope_of(record, self.published))
            self.published = record.position
        return out

    async def publish(self, records: Sequence[RecordedEvent]) -> None:
        await self.bus.publish(self.envelopes(records))

    async def write(self, stream_id: str, *events: DomainEvent) -> list[RecordedEvent]:
        """Append and publish, like the write side and the relay together."""
        records = await self.append(stream_id, *events)
        await self.publish(records)
        return records

    def projector(self, projections: Sequence[Projection] | None = None) -> Projector:
        from projections.bank import bank_projections

        return Projector(
            projections or bank_projections(),
            engine=self.engine,
            store=self.store,
            bus=self.bus,
            parking=self.parking,
            config=FAST,
        )

    async def start(self, projector: Projector) -> asyncio.Event:
        stop = asyncio.Event()
        self.running.append((stop, asyncio.create_task(projector.run(stop))))
        return stop

    async def stop_all(self) -> None:
        for stop, _ in self.running:
            stop.set()
        async with asyncio.timeout(10):
            for _, task in self.running:
                await task
        self.running.clear()


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    url = f"sqlite:///{tmp_path / 'chronicle.db'}"
    store = await open_event_store(url)
    engine = open_engine(url, writer=True)
    await ensure_schema(url, engine)
    bus = MemoryBus(queues=queue_specs())
    built = World(url, store, engine, bus, MemoryParkingLot())
    try:
        yield built
    finally:
        await built.stop_all()
        await bus.close()
        await engine.dispose()
        await store.close()
