"""RabbitMQ-only behaviour of the bus: declarations that conflict, an unreachable broker."""

from __future__ import annotations

import asyncio

import aio_pika
import pytest

from eventstore.bus import BusUnavailable, TopologyMismatch
from tests.integration.relay.conftest import Broker
from tests.integration.relay.test_bus_contract import events, nothing_more, take
from tests.tcp_proxy import TcpProxy

pytestmark = pytest.mark.rabbitmq


async def test_a_queue_declared_with_other_arguments_is_a_topology_mismatch(
    broker: Broker,
) -> None:
    spec = broker.queue("clash")
    connection = await aio_pika.connect(broker.url)
    async with connection:
        channel = await connection.channel()
        await channel.declare_queue(broker.topology.queue_name(spec.name), durable=True)
    bus = broker.bus()
    with pytest.raises(TopologyMismatch, match="single-active-consumer"):
        await bus.declare([spec])
    await bus.check()  # only the declaring channel was closed
    await bus.declare()  # and the rest of the topology still declares


async def test_an_unreachable_broker_is_unavailable_until_it_is_back(
    broker: Broker,
    rabbitmq_proxy: tuple[TcpProxy, str],
) -> None:
    proxy, proxied_url = rabbitmq_proxy
    spec = broker.queue("comeback")
    direct = broker.bus()
    await direct.declare([spec])
    bus = broker.bus(proxied_url)
    await bus.publish(events(1))
    await proxy.outage()
    with pytest.raises(BusUnavailable):
        await bus.publish(events(2))
    with pytest.raises(BusUnavailable):
        await bus.check()
    await proxy.resume()
    await bus.check()
    await bus.publish(events(3))
    async with direct.consume_queue(spec) as subscription:
        assert [d.position for d in await take(subscription, 2)] == [1, 3]


async def test_a_broadcast_reader_resumes_after_its_last_offset_when_the_broker_is_back(
    broker: Broker,
    rabbitmq_proxy: tuple[TcpProxy, str],
) -> None:
    proxy, proxied_url = rabbitmq_proxy
    direct = broker.bus()
    await direct.declare()
    await direct.publish(events(*range(1, 11)))
    async with broker.bus(proxied_url).consume_broadcast(start="first") as reader:
        assert [d.position for d in await take(reader, 5)] == [1, 2, 3, 4, 5]
        await proxy.outage()
        await direct.publish(events(*range(11, 16)))
        await proxy.resume()
        # What was buffered before the loss comes first, then the stream from the
        # offset after the last delivery handed out: no gap and no duplicate.
        assert [d.position for d in await take(reader, 10)] == list(range(6, 16))
        assert await nothing_more(reader)


async def test_settling_a_delivery_of_a_lost_channel_settles_nothing_on_the_next(
    broker: Broker,
    rabbitmq_proxy: tuple[TcpProxy, str],
) -> None:
    proxy, proxied_url = rabbitmq_proxy
    spec = broker.queue("stale")
    direct = broker.bus()
    await direct.declare([spec])
    await direct.publish(events(1, 2, 3))
    async with broker.bus(proxied_url).consume_queue(spec) as subscription:
        held = await take(subscription, 3, ack=False)
        await proxy.outage()
        await proxy.resume()
        again = await take(subscription, 3, ack=False)
        assert [(d.position, d.redelivered) for d in again] == [(1, True), (2, True), (3, True)]
        # Their tags mean other messages on the new channel: settling them must not
        # reach it (it goes nowhere, the old channel being gone).
        await held[-1].ack_through()
        await held[0].nack(requeue=False)
    async with direct.consume_queue(spec) as after:
        assert [d.position for d in await take(after, 3)] == [1, 2, 3]


async def test_calls_made_while_the_channel_opens_and_after_it_keep_call_order(
    broker: Broker,
) -> None:
    spec = broker.queue("order")
    await broker.bus().declare([spec])
    bus = broker.bus()  # fresh: its first call opens the publishing channel
    count = 1000
    calls = []
    for position in range(1, count + 1):
        calls.append(asyncio.create_task(bus.publish(events(position))))
        # One call per turn of the loop: the first ones queue while the channel opens,
        # the next ones come while those queued calls are being let through.
        await asyncio.sleep(0)
    await asyncio.gather(*calls)
    async with broker.bus().consume_queue(spec, prefetch=count) as subscription:
        got = [d.position for d in await take(subscription, count)]
    assert got == list(range(1, count + 1))


async def test_acks_sent_in_waves_reach_the_broker_in_the_order_they_were_made(
    broker: Broker,
) -> None:
    spec = broker.queue("acks")
    bus = broker.bus()
    await bus.declare([spec])
    count = 400
    await bus.publish(events(*range(1, count + 1)))
    async with bus.consume_queue(spec, prefetch=count) as subscription:
        held = await take(subscription, count, ack=False)
        acks = []
        for wave in range(0, count, 25):
            # More acks in one turn of the loop than the connection's frame buffer
            # holds, and the next wave made while the last one still waits for room.
            acks += [asyncio.create_task(d.ack_through()) for d in held[wave : wave + 25]]
            await asyncio.sleep(0)
        await asyncio.gather(*acks)
        # An ack out of order names a tag a multiple ack already covered: the broker
        # closes the channel and everything not yet acknowledged comes again.
        assert await nothing_more(subscription, within=1.0)
