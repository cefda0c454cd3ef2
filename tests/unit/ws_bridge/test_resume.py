"""Resume and the live feed on the embedded backends (SQLite in memory, in-process bus):
no gap and no duplicate across the switch from the log to the live feed."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from eventstore import EventStore, NewEvent, open_event_store
from eventstore.bus import EventBus, open_bus
from eventstore.bus.wire import encode
from eventstore.model import RecordedEvent
from ws_bridge.auth import Authenticator
from ws_bridge.context import BridgeContext
from ws_bridge.fanout import Fanout, Subscription
from ws_bridge.hub import Hub
from ws_bridge.metrics import BridgeMetrics
from ws_bridge.protocol import Filter
from ws_bridge.resume import backfill, start_backfill
from ws_bridge.settings import BridgeSettings

from .helpers import FullSink, RecordingSink


@pytest.fixture
async def store() -> AsyncIterator[EventStore]:
    opened = await open_event_store("sqlite://:memory:")
    yield opened
    await opened.close()


@pytest.fixture
async def bus() -> AsyncIterator[EventBus]:
    opened = open_bus("memory://")
    yield opened
    await opened.close()


class Harness:
    def __init__(self, store: EventStore, bus: EventBus, page: int = 3) -> None:
        self.store, self.bus = store, bus
        self.fanout = Fanout()
        settings = BridgeSettings(auth="disabled", bridge_backfill_page=page)
        metrics = BridgeMetrics()
        self.hub = Hub(store, bus, self.fanout, metrics, page_size=page)
        self.context = BridgeContext(
            settings, store, self.fanout, self.hub, metrics, Authenticator(settings)
        )
        self.published = 0

    async def append(self, count: int, stream: str = "account-a") -> list[RecordedEvent]:
        result = await self.store.append(
            stream, [NewEvent("MoneyDeposited", {"n": i}) for i in range(count)]
        )
        return list(result.events)

    async def publish(self, events: list[RecordedEvent], previous: int | None = None) -> None:
        for event in events:
            prev = self.published if previous is None else previous
            await self.bus.publish([encode(event, prev)])
            self.published = event.position

    async def wait_position(self, position: int) -> None:
        async with asyncio.timeout(5):
            while self.hub.position < position:
                await asyncio.sleep(0)


async def _run_hub(h: Harness) -> tuple[asyncio.Event, asyncio.Task[None]]:
    stop = asyncio.Event()
    task = asyncio.create_task(h.hub.run(stop))
    async with asyncio.timeout(5):
        await h.hub.started.wait()
    return stop, task


async def test_backfill_then_live_without_gap_or_duplicate(
    store: EventStore, bus: EventBus
) -> None:
    h = Harness(store, bus)
    await h.publish(await h.append(7))
    stop, task = await _run_hub(h)
    sink = RecordingSink()
    sub = Subscription("s", Filter(), sink, 100)
    start_backfill(sub, 2, 100)
    h.fanout.add(sub)
    backfilling = asyncio.create_task(backfill(h.context, sub, 2, sink))
    # Live events arrive while the log is being read; some overlap what it reads.
    later = await h.append(5, "account-b")
    await h.publish(later)
    await backfilling
    more = await h.append(2)
    await h.publish(more)
    await h.wait_position(more[-1].position)
    positions = sink.positions()
    assert positions == list(range(3, 15))
    caught = [f for f in sink.frames if f["op"] == "caught_up"]
    assert len(caught) == 1
    index = sink.frames.index(caught[0])
    assert all(f["position"] <= caught[0]["position"] for f in sink.frames[:index])
    stop.set()
    await task


async def test_resume_ahead_of_the_replica_skips_what_the_client_has(
    store: EventStore, bus: EventBus
) -> None:
    h = Harness(store, bus)
    stop, task = await _run_hub(h)
    events = await h.append(6)
    sink = RecordingSink()
    sub = Subscription("s", Filter(streams=frozenset({"account-a"})), sink, 100)
    start_backfill(sub, events[3].position, 100)
    h.fanout.add(sub)
    await backfill(h.context, sub, events[3].position, sink)
    await h.publish(events)
    await h.wait_position(events[-1].position)
    assert sink.positions() == [e.position for e in events[4:]]
    stop.set()
    await task


async def test_a_live_gap_is_filled_from_the_store(store: EventStore, bus: EventBus) -> None:
    h = Harness(store, bus)
    stop, task = await _run_hub(h)
    sink = RecordingSink()
    h.fanout.add(Subscription("s", Filter(), sink, 100))
    events = await h.append(8)
    await h.publish(events[:2])
    # Events 3..7 never reach the bus; the 8th says what came before it.
    h.published = events[6].position
    await h.publish(events[7:])
    await h.wait_position(events[-1].position)
    assert sink.positions() == [e.position for e in events]
    stop.set()
    await task


async def test_duplicates_from_the_bus_are_dropped(store: EventStore, bus: EventBus) -> None:
    h = Harness(store, bus)
    stop, task = await _run_hub(h)
    sink = RecordingSink()
    h.fanout.add(Subscription("s", Filter(), sink, 100))
    events = await h.append(3)
    await h.publish(events)
    h.published = 0
    await h.publish(events)
    extra = await h.append(1)
    await h.publish(extra)
    await h.wait_position(extra[0].position)
    assert sink.positions() == [e.position for e in events + extra]
    stop.set()
    await task


async def test_caught_up_comes_before_live_events_when_the_client_queue_is_full(
    store: EventStore, bus: EventBus
) -> None:
    h = Harness(store, bus)
    events = await h.append(3)
    await h.publish(events)
    stop, task = await _run_hub(h)
    await h.wait_position(events[-1].position)
    sink = FullSink()
    sub = Subscription("s", Filter(), sink, 100)
    start_backfill(sub, events[-1].position, 100)  # nothing to backfill: caught up at once
    h.fanout.add(sub)
    backfilling = asyncio.create_task(backfill(h.context, sub, events[-1].position, sink))
    async with asyncio.timeout(5):
        while sub.pending is not None:  # the subscription turned live
            await asyncio.sleep(0)
    live = await h.append(1, "account-b")
    await h.publish(live)
    await h.wait_position(live[-1].position)
    sink.make_room()
    await backfilling
    assert [(f["op"], f["position"]) for f in sink.frames] == [
        ("caught_up", events[-1].position),
        ("event", live[0].position),
    ]
    stop.set()
    await task
