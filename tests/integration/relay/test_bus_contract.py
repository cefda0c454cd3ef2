"""What consumers may rely on, on both buses: the in-process one and RabbitMQ."""

from __future__ import annotations

import asyncio

import pytest

from eventstore.bus import Delivery, Envelope, EventBus, QueueSpec, Subscription, encode
from eventstore.bus.memory import MemoryBus
from eventstore.model import RecordedEvent
from tests.integration.relay.conftest import Broker
from tests.unit.relay.helpers import recorded_event


class Harness:
    """A bus, and where its queues come from (so RabbitMQ ones are cleaned up)."""

    def __init__(self, bus: EventBus, broker: Broker | None) -> None:
        self.bus = bus
        self.broker = broker

    def queue(self, name: str, *keys: str) -> QueueSpec:
        if self.broker is not None:
            return self.broker.queue(name, *keys)
        return QueueSpec(name, keys or ("#",))


@pytest.fixture(params=["memory", pytest.param("amqp", marks=pytest.mark.rabbitmq)])
def harness(request: pytest.FixtureRequest) -> Harness:
    """Each test once per bus. (The in-process bus holds nothing to release.)"""
    if request.param == "memory":
        return Harness(MemoryBus(), None)
    broker: Broker = request.getfixturevalue("broker")
    return Harness(broker.bus(), broker)


def events(*positions: int, stream: str = "account-1", type_: str = "Opened") -> list[Envelope]:
    """Envelopes of made-up events at ``positions``, chained in that order."""
    chained, previous = [], 0
    for position in positions:
        chained.append(encode(recorded_event(position, stream=stream, type_=type_), previous))
        previous = position
    return chained


async def take(
    subscription: Subscription, count: int, *, ack: bool = True, timeout: float = 10
) -> list[Delivery]:
    got = []
    for _ in range(count):
        delivery = await asyncio.wait_for(anext(subscription), timeout)
        if ack:
            await delivery.ack()
        got.append(delivery)
    return got


async def nothing_more(subscription: Subscription, within: float = 0.3) -> bool:
    """True when no delivery comes within ``within`` seconds (an absence can only be
    observed over some time)."""
    try:
        await asyncio.wait_for(anext(subscription), within)
    except TimeoutError:
        return True
    return False


async def test_events_arrive_in_publish_order_with_everything_they_carry(
    harness: Harness,
) -> None:
    spec = harness.queue("all")
    await harness.bus.declare([spec])
    sent = events(*range(10, 310, 10))
    for start in range(0, 30, 10):
        await harness.bus.publish(sent[start : start + 10])
    async with harness.bus.consume_queue(spec) as subscription:
        got = await take(subscription, 30)
    assert [d.position for d in got] == [e.position for e in sent]
    assert [d.previous_position for d in got] == [e.previous_position for e in sent]
    assert not any(d.redelivered for d in got)
    original: RecordedEvent = recorded_event(1)
    assert type(got[0].event) is type(original)
    assert str(got[0].event.event_id) == sent[0].message_id
    assert got[0].event.metadata["correlation_id"] == "c-1"


async def test_a_queue_receives_only_its_routing_keys(harness: Harness) -> None:
    spec = harness.queue("transfers", "transfer.*", "account.Closed")
    await harness.bus.declare([spec])
    mixed = [
        *events(1, stream="account-1", type_="Opened"),
        *events(2, stream="transfer-1", type_="Started"),
        *events(3, stream="account-1", type_="Closed"),
        *events(4, stream="transfer-2", type_="Completed"),
    ]
    await harness.bus.publish(mixed)
    async with harness.bus.consume_queue(spec) as subscription:
        got = await take(subscription, 3)
        assert await nothing_more(subscription)
    assert [d.position for d in got] == [2, 3, 4]


async def test_unsettled_deliveries_go_back_in_order_to_the_next_consumer(
    harness: Harness,
) -> None:
    spec = harness.queue("handover")
    await harness.bus.declare([spec])
    await harness.bus.publish(events(*range(1, 11)))
    async with harness.bus.consume_queue(spec, prefetch=4) as first:
        held = await take(first, 4, ack=False)
    assert [d.position for d in held] == [1, 2, 3, 4]
    async with harness.bus.consume_queue(spec) as second:
        got = await take(second, 10)
    assert [d.position for d in got] == list(range(1, 11))
    assert [d.redelivered for d in got] == [True] * 4 + [False] * 6


async def test_a_nacked_delivery_comes_again_and_a_dropped_one_never(harness: Harness) -> None:
    spec = harness.queue("retry")
    await harness.bus.declare([spec])
    await harness.bus.publish(events(1, 2, 3))
    async with harness.bus.consume_queue(spec) as subscription:
        first, second = await take(subscription, 2, ack=False)
        await first.nack(requeue=True)
        await second.nack(requeue=False)
        await first.ack()  # settling twice does nothing
        rest = await take(subscription, 2)
        assert await nothing_more(subscription)
    assert sorted((d.position, d.redelivered) for d in rest) == [(1, True), (3, False)]


async def test_one_active_consumer_per_queue_and_the_next_takes_over(harness: Harness) -> None:
    spec = harness.queue("single")
    await harness.bus.declare([spec])
    active = harness.bus.consume_queue(spec)
    await harness.bus.publish(events(1))
    assert [d.position for d in await take(active, 1)] == [1]  # attached and active
    standby = harness.bus.consume_queue(spec)
    waiting = asyncio.create_task(take(standby, 3))
    await harness.bus.publish(events(2, 3, 4))
    assert [d.position for d in await take(active, 3)] == [2, 3, 4]
    await active.close()
    await harness.bus.publish(events(5, 6, 7))
    got = await asyncio.wait_for(waiting, 10)
    assert [d.position for d in got] == [5, 6, 7]
    await standby.close()


async def test_prefetch_bounds_unsettled_deliveries(harness: Harness) -> None:
    spec = harness.queue("prefetch")
    await harness.bus.declare([spec])
    await harness.bus.publish(events(*range(1, 8)))
    async with harness.bus.consume_queue(spec, prefetch=3) as subscription:
        held = await take(subscription, 3, ack=False)
        assert await nothing_more(subscription)
        await held[0].ack()
        assert [d.position for d in await take(subscription, 1, ack=False)] == [4]


async def test_acking_through_a_delivery_settles_every_unsettled_one_before_it(
    harness: Harness,
) -> None:
    spec = harness.queue("through")
    await harness.bus.declare([spec])
    await harness.bus.publish(events(*range(1, 9)))
    async with harness.bus.consume_queue(spec, prefetch=6) as subscription:
        held = await take(subscription, 6, ack=False)
        assert await nothing_more(subscription)
        await held[1].ack()  # settled on its own first
        await held[3].ack_through()  # settles 1, 3 and 4
        assert [d.settled for d in held] == [True] * 4 + [False] * 2
        await held[2].ack_through()  # nothing unsettled up to there: nothing to send
        await held[0].ack()  # settling again does nothing
        freed = await take(subscription, 2, ack=False)  # four places in prefetch freed
        await freed[-1].ack_through()
        assert all(d.settled for d in held + freed)
        assert await nothing_more(subscription)
    assert [d.position for d in freed] == [7, 8]
    assert not any(d.redelivered for d in held + freed)
    async with harness.bus.consume_queue(spec) as again:
        assert await nothing_more(again)  # every one was acknowledged, none comes back


async def test_every_broadcast_reader_gets_every_event_from_its_start(harness: Harness) -> None:
    await harness.bus.declare()
    sent = events(*range(1, 21))
    await harness.bus.publish(sent)
    async with (
        harness.bus.consume_broadcast(start="first") as one,
        harness.bus.consume_broadcast(start="first") as two,
    ):
        got_one, got_two = await take(one, 20), await take(two, 20)
    assert [d.position for d in got_one] == list(range(1, 21))
    assert [d.position for d in got_two] == list(range(1, 21))
    offsets = [d.offset for d in got_one]
    assert all(isinstance(o, int) for o in offsets)
    assert offsets == sorted(offsets)
    async with harness.bus.consume_broadcast(start=got_one[14].offset or 0) as later:
        assert [d.position for d in await take(later, 5)] == [15, 16, 17, 18, 19, 20][:5]


async def test_a_broadcast_reader_from_next_sees_only_later_events(harness: Harness) -> None:
    await harness.bus.declare()
    await harness.bus.publish(events(1, 2))
    async with harness.bus.consume_broadcast(start="next") as reader:
        await harness.bus.publish(events(3, 4))
        got = await take(reader, 2)
    assert [d.position for d in got] == [3, 4]


async def test_declaring_again_changes_nothing(harness: Harness) -> None:
    spec = harness.queue("twice", "account.*")
    await harness.bus.declare([spec])
    await harness.bus.declare([spec])
    await harness.bus.publish(events(1))
    async with harness.bus.consume_queue(spec) as subscription:
        assert [d.position for d in await take(subscription, 1)] == [1]
    await harness.bus.check()


async def test_a_message_that_is_no_event_is_dropped_not_delivered(harness: Harness) -> None:
    spec = harness.queue("garbage")
    await harness.bus.declare([spec])
    good = events(7)[0]
    garbage = Envelope("x", good.routing_key, {}, b"garbage", 0, 0, "T", good.recorded_at)
    await harness.bus.publish([garbage, good])
    async with harness.bus.consume_queue(spec) as subscription:
        assert [d.position for d in await take(subscription, 1)] == [7]
        assert await nothing_more(subscription)
