"""RabbitMQ taken away (through a proxy the test controls) and given back."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from eventstore import EventStore, RecordedEvent
from tests.integration.relay.conftest import Broker, Collector, relay_running
from tests.integration.relay.test_bus_contract import events
from tests.tcp_proxy import TcpProxy
from tests.unit.relay.helpers import append_events, wait_until

pytestmark = [pytest.mark.postgres, pytest.mark.rabbitmq]


class Writer:
    """Appends a few events every few milliseconds until stopped; a stop lets the
    append in progress finish, so ``appended`` is exactly what the log holds."""

    def __init__(self, store: EventStore) -> None:
        self.appended: list[RecordedEvent] = []
        self._store = store
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Writer:
        self._task = asyncio.create_task(self._run())
        return self

    async def _run(self) -> None:
        while not self._stop.is_set():
            self.appended += await append_events(self._store, 2, per_append=2)
            await asyncio.sleep(0.005)  # pacing the load, not waiting for anything

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._task is not None
        self._stop.set()
        await self._task


async def _readyz(client: httpx.AsyncClient, expected: int) -> bool:
    try:
        return (await client.get("/readyz")).status_code == expected
    except httpx.TransportError:
        return False


async def test_the_relay_recovers_by_itself_and_is_unready_meanwhile(
    pg_url: str,
    pg_store: EventStore,
    broker: Broker,
    rabbitmq_proxy: tuple[TcpProxy, str],
) -> None:
    proxy, proxied_url = rabbitmq_proxy
    spec = broker.queue("outage")
    consumer = broker.bus()  # straight to RabbitMQ: only the relay loses it
    await consumer.declare([spec])
    settings = broker.settings(
        proxied_url, eventstore_url=pg_url, relay_batch_size=20, broker_connect_timeout=1.0
    )
    async with (
        relay_running(settings) as base,
        httpx.AsyncClient(base_url=base) as client,
        Collector(consumer, spec) as collector,
    ):
        async with Writer(pg_store) as writer:
            await wait_until(lambda: _readyz(client, 200), 10, "ready")
            await wait_until(lambda: len(collector.deliveries) >= 40, 10, "events flowing")
            await proxy.outage()
            await wait_until(lambda: _readyz(client, 503), 10, "not ready during the outage")
            during = len(writer.appended)
            await wait_until(lambda: len(writer.appended) >= during + 40, 10, "appends go on")
            assert proxy.open_connections == 0
            await proxy.resume()
            await wait_until(lambda: _readyz(client, 200), 15, "ready again")
        await wait_until(lambda: collector.has_all(writer.appended), 20, "every event")
    applied, _ = collector.apply_like_a_consumer()
    assert applied == sorted(writer.appended, key=lambda e: e.position)
    assert proxy.accepted >= 2  # it did reconnect through the proxy


async def test_a_consumer_resumes_by_itself_after_losing_the_broker(
    broker: Broker, rabbitmq_proxy: tuple[TcpProxy, str]
) -> None:
    proxy, proxied_url = rabbitmq_proxy
    spec = broker.queue("consumer-outage")
    publisher = broker.bus()
    await publisher.declare([spec])
    sent = events(*range(1, 101))
    await publisher.publish(sent[:50])
    async with Collector(broker.bus(proxied_url), spec) as collector:
        await wait_until(lambda: len(collector.deliveries) >= 10, 10, "first deliveries")
        await proxy.outage()
        await publisher.publish(sent[50:])
        await proxy.resume()
        await wait_until(lambda: len(collector.ids()) == 100, 20, "every message")
    positions = sorted({d.position for d in collector.deliveries})
    assert positions == list(range(1, 101))
