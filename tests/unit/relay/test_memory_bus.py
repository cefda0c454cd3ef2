"""What only the in-process bus has: retention by size, start offsets, closing.
(Everything consumers rely on is in the contract suite, run on both buses.)"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from eventstore.bus import BusClosed, QueueSpec, encode
from eventstore.bus.memory import MemoryBus
from tests.unit.relay.helpers import recorded_event


def envelopes(count: int, start: int = 1) -> list:  # type: ignore[type-arg]
    return [encode(recorded_event(p), p - 1) for p in range(start, start + count)]


async def take(subscription, count: int) -> list[int]:  # type: ignore[no-untyped-def]
    got = []
    async for delivery in subscription:
        got.append(delivery.position)
        await delivery.ack()
        if len(got) == count:
            break
    return got


async def test_the_broadcast_keeps_only_the_newest_bytes() -> None:
    batch = envelopes(10)
    bus = MemoryBus(retain_bytes=sum(len(e.body) for e in batch[-3:]))
    await bus.publish(batch)
    async with bus.consume_broadcast(start="first") as reader:
        assert await take(reader, 3) == [8, 9, 10]


async def test_broadcast_starts() -> None:
    bus = MemoryBus()
    await bus.publish(envelopes(5))
    async with bus.consume_broadcast(start=3) as reader:
        assert await take(reader, 2) == [4, 5]
    async with bus.consume_broadcast(start="last") as reader:
        assert await take(reader, 1) == [5]
    async with bus.consume_broadcast(start=datetime.now(UTC) + timedelta(hours=1)) as reader:
        await bus.publish(envelopes(1, start=6))
        assert await take(reader, 1) == [6]
    with pytest.raises(ValueError, match="invalid broadcast start"):
        bus.consume_broadcast(start=-1)


async def test_closing_the_bus_ends_every_subscription() -> None:
    bus = MemoryBus()
    reader = bus.consume_queue(QueueSpec("q"))
    pending = asyncio.create_task(take(reader, 1))
    await asyncio.sleep(0)
    await bus.close()
    assert await asyncio.wait_for(pending, 1) == []
    with pytest.raises(BusClosed):
        await bus.publish(envelopes(1))
    with pytest.raises(BusClosed):
        await bus.check()


async def test_queues_declared_at_construction_receive_from_the_start() -> None:
    bus = MemoryBus(queues=[QueueSpec("early", ("account.*",))])
    await bus.publish(envelopes(2))
    async with bus.consume_queue(QueueSpec("early", ("account.*",))) as reader:
        assert await take(reader, 2) == [1, 2]
