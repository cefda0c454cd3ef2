"""The relay's publishing loop against an in-memory store and fakes of its interfaces."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest

from eventstore import EventStore
from eventstore.bus import Publisher
from eventstore.leader import Leadership
from eventstore.relay import Relay, RelayConfig, SoleLeadership
from tests.unit.relay.fakes import (
    FailingPublisher,
    GatedPublisher,
    RecordingPublisher,
    SwitchLeadership,
)
from tests.unit.relay.helpers import append_events, wait_until

CONFIG = RelayConfig(
    name="relay-test",
    batch_size=7,
    retry_initial_delay=0.01,
    retry_max_delay=0.02,
    checkpoint_interval=0.0,
)


@contextlib.asynccontextmanager
async def running(
    store: EventStore,
    publisher: Publisher,
    leadership: Leadership | None = None,
    config: RelayConfig = CONFIG,
) -> AsyncIterator[Relay]:
    relay = Relay(store, publisher, leadership or SoleLeadership(), config)
    stop = asyncio.Event()
    task = asyncio.create_task(relay.run(stop))
    try:
        yield relay
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)


async def test_publishes_every_event_in_order_with_the_previous_position_chain(
    memory_store: EventStore,
) -> None:
    events = await append_events(memory_store, 40, per_append=3)
    publisher = RecordingPublisher()
    async with running(memory_store, publisher):
        await wait_until(lambda: len(publisher.envelopes) >= 40, what="40 published")
        await wait_until(
            lambda: _checkpoint_is(memory_store, events[-1].position), what="checkpoint"
        )
    assert publisher.positions == [e.position for e in events]
    previous = [e.previous_position for e in publisher.envelopes]
    assert previous == [0, *[e.position for e in events[:-1]]]
    assert all(len(call) <= CONFIG.batch_size for call in publisher.calls)
    first = publisher.envelopes[0]
    assert first.message_id == str(events[0].event_id)
    assert first.routing_key == f"{events[0].category}.{events[0].type}"


async def _checkpoint_is(store: EventStore, position: int) -> bool:
    return await store.load_checkpoint(CONFIG.name) == position


async def test_follows_events_appended_while_running(memory_store: EventStore) -> None:
    publisher = RecordingPublisher()
    async with running(memory_store, publisher):
        events = await append_events(memory_store, 10)
        await wait_until(lambda: len(publisher.envelopes) >= 10, what="live events")
        more = await append_events(memory_store, 5)
        await wait_until(lambda: len(publisher.envelopes) >= 15, what="more live events")
    assert publisher.positions == [e.position for e in [*events, *more]]


async def test_the_checkpoint_moves_only_after_the_broker_confirmed(
    memory_store: EventStore,
) -> None:
    events = await append_events(memory_store, 20)
    publisher = GatedPublisher()
    async with running(memory_store, publisher) as relay:
        await wait_until(lambda: len(publisher.envelopes) == 20, what="all sent")
        assert await memory_store.load_checkpoint(CONFIG.name) == 0
        assert relay.status.confirmed_position == 0
        publisher.gate.set()
        await wait_until(lambda: _checkpoint_is(memory_store, events[-1].position))


async def test_confirms_are_pipelined_up_to_the_window(memory_store: EventStore) -> None:
    await append_events(memory_store, 100)
    publisher = GatedPublisher()
    config = RelayConfig(name="pipe", batch_size=5, max_in_flight=3)
    async with running(memory_store, publisher, config=config):
        await wait_until(lambda: publisher.in_flight == 3, what="three batches in flight")
        assert len(publisher.envelopes) == 15  # the window is full: nothing more is read
        publisher.gate.set()
        await wait_until(lambda: len(publisher.envelopes) == 100, what="the rest")
    assert publisher.most_in_flight == 3


async def test_a_failed_publish_is_retried_from_the_last_confirm(
    memory_store: EventStore,
) -> None:
    events = await append_events(memory_store, 50)
    publisher = FailingPublisher(failures={2, 3, 5})
    async with running(memory_store, publisher) as relay:
        await wait_until(
            lambda: _checkpoint_is(memory_store, events[-1].position), what="all confirmed"
        )
        assert relay.status.last_error is None
    seen: list[int] = []
    for position in publisher.positions:
        if position not in seen:
            assert not seen or position > seen[-1], "a new event came out of order"
            seen.append(position)
    assert seen == [e.position for e in events]
    registry = relay.metrics.registry
    assert registry.get_sample_value("chronicle_relay_failures_total", {"kind": "broker"}) == 3


async def test_a_restarted_relay_resumes_after_the_checkpoint(memory_store: EventStore) -> None:
    first = await append_events(memory_store, 12)
    publisher = RecordingPublisher()
    async with running(memory_store, publisher):
        await wait_until(lambda: _checkpoint_is(memory_store, first[-1].position))
    second = await append_events(memory_store, 5)
    again = RecordingPublisher()
    async with running(memory_store, again):
        await wait_until(lambda: len(again.envelopes) >= 5, what="the new events")
    assert again.positions == [e.position for e in second]
    assert again.envelopes[0].previous_position == first[-1].position


async def test_a_standby_publishes_nothing_and_losing_the_lead_stops_publishing(
    memory_store: EventStore,
) -> None:
    await append_events(memory_store, 10)
    publisher = RecordingPublisher()
    leadership = SwitchLeadership()
    async with running(memory_store, publisher, leadership) as relay:
        await wait_until(lambda: relay.status.role == "standby")
        await asyncio.sleep(0.05)  # a standby must stay silent; nothing to wait for
        assert publisher.calls == []
        leadership.granted.set()
        await wait_until(lambda: len(publisher.envelopes) == 10, what="leader publishes")
        assert relay.metrics.registry.get_sample_value("chronicle_relay_active") == 1
        leadership.take_away()
        await wait_until(lambda: relay.status.role == "standby", what="stands down")
        await append_events(memory_store, 3)
        await asyncio.sleep(0.05)  # the lost lead must keep it silent
        assert len(publisher.envelopes) == 10
        leadership.granted.set()
        await wait_until(lambda: len(publisher.envelopes) == 13, what="leads again")
    assert leadership.acquired == 2
    assert leadership.released == 2
    assert relay.status.role == "stopped"


async def test_stop_drains_in_flight_confirms_and_saves_the_checkpoint(
    memory_store: EventStore,
) -> None:
    events = await append_events(memory_store, 6)
    publisher = GatedPublisher()
    relay = Relay(memory_store, publisher, SoleLeadership(), CONFIG)
    stop = asyncio.Event()
    task = asyncio.create_task(relay.run(stop))
    await wait_until(lambda: len(publisher.envelopes) == 6)
    stop.set()
    await asyncio.sleep(0.01)
    assert not task.done()  # still waiting for the confirm
    publisher.gate.set()
    await asyncio.wait_for(task, 5)
    assert await memory_store.load_checkpoint(CONFIG.name) == events[-1].position


@pytest.mark.parametrize("bad", [{"batch_size": 0}, {"max_in_flight": 0}, {"name": ""}])
def test_config_rejects_nonsense(bad: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="relay needs"):
        RelayConfig(**bad)  # type: ignore[arg-type]
