"""The relay between the real PostgreSQL and the real RabbitMQ, in this process."""

from __future__ import annotations

import asyncio

import aio_pika
import httpx
import pytest

from eventstore import EventStore, RecordedEvent
from tests.integration.relay.conftest import Broker, relay_running, sample
from tests.unit.relay.helpers import append_events, wait_until

pytestmark = [pytest.mark.postgres, pytest.mark.rabbitmq]


async def test_every_appended_event_arrives_in_order_with_its_headers(
    pg_url: str, pg_store: EventStore, broker: Broker
) -> None:
    spec, raw_spec = broker.queue("everything"), broker.queue("raw", "account.*")
    consumer = broker.bus()
    await consumer.declare([spec, raw_spec])
    async with relay_running(broker.settings(eventstore_url=pg_url, relay_batch_size=50)):
        # Concurrent writers: commit order is not id order, which the relay must respect.
        batches = await asyncio.gather(
            *(append_events(pg_store, 60, per_append=3, tag=f"w{w}") for w in range(5))
        )
        appended = sorted((e for batch in batches for e in batch), key=lambda e: e.position)
        received = []
        async with consumer.consume_queue(spec) as subscription:
            async for delivery in subscription:
                received.append(delivery)
                await delivery.ack()
                if len(received) == len(appended):
                    break
    assert [d.event for d in received] == appended
    chain = [0, *[e.position for e in appended[:-1]]]
    assert [d.previous_position for d in received] == chain
    assert await pg_store.load_checkpoint("relay") == appended[-1].position
    await _check_raw_messages(broker, appended)


async def _check_raw_messages(broker: Broker, appended: list[RecordedEvent]) -> None:
    """What is on the wire, read with the plain driver."""
    accounts = [e for e in appended if e.category == "account"]
    chain = [0, *[a.position for a in appended[:-1]]]
    previous = {e.position: p for e, p in zip(appended, chain, strict=True)}
    connection = await aio_pika.connect(broker.url)
    async with connection:
        channel = await connection.channel()
        queue = await channel.get_queue(broker.topology.queue_name("raw"))
        messages = []
        async with queue.iterator() as iterator:
            async for message in iterator:
                await message.ack()
                messages.append(message)
                if len(messages) == len(accounts):
                    break
        for event, message in zip(accounts, messages, strict=True):
            assert message.message_id == str(event.event_id)
            assert message.routing_key == f"account.{event.type}"
            assert message.delivery_mode == aio_pika.DeliveryMode.PERSISTENT
            assert message.content_type == "application/json"
            assert message.headers == {
                "position": event.position,
                "previous_position": previous[event.position],
                "stream_id": event.stream_id,
                "version": event.version,
                "type": event.type,
                "category": "account",
                "correlation_id": event.metadata["correlation_id"],
                "traceparent": event.metadata["traceparent"],
            }


async def test_health_and_metrics_of_a_running_relay(
    pg_url: str, pg_store: EventStore, broker: Broker
) -> None:
    settings = broker.settings(eventstore_url=pg_url)
    async with relay_running(settings) as base, httpx.AsyncClient(base_url=base) as client:
        await wait_until(lambda: _status(client, "/readyz", 200), what="ready")
        events = await append_events(pg_store, 5)
        last = events[-1].position

        async def confirmed() -> bool:
            text = (await client.get("/metrics")).text
            return sample(text, "chronicle_relay_confirmed_position") == last

        await wait_until(confirmed, what="the relay to confirm the events")
        text = (await client.get("/metrics")).text
    assert "chronicle_relay_active 1.0" in text
    assert "chronicle_relay_published_events_total 5.0" in text


async def _status(client: httpx.AsyncClient, path: str, expected: int) -> bool:
    try:
        return (await client.get(path)).status_code == expected
    except httpx.TransportError:
        return False
