"""RabbitMQ-only behaviour of the bus: declarations that conflict, an unreachable broker."""

from __future__ import annotations

import aio_pika
import pytest

from eventstore.bus import BusUnavailable, TopologyMismatch
from tests.integration.relay.conftest import Broker
from tests.integration.relay.test_bus_contract import events, take
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
