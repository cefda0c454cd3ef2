"""The relay's HTTP surface: alive, ready when its dependencies answer, metrics."""

from __future__ import annotations

import httpx

from chronicle.run_relay import health_app
from eventstore import EventStore
from eventstore.bus.memory import MemoryBus
from eventstore.relay import Relay, SoleLeadership
from tests.unit.relay.fakes import RecordingPublisher


def client_for(relay: Relay, store: EventStore, bus: MemoryBus) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=health_app(relay, store, bus))
    return httpx.AsyncClient(transport=transport, base_url="http://relay")


async def test_ready_while_standing_by_when_dependencies_answer(memory_store: EventStore) -> None:
    bus = MemoryBus()
    relay = Relay(memory_store, RecordingPublisher(), SoleLeadership())
    relay.status.role = "standby"
    async with client_for(relay, memory_store, bus) as client:
        assert (await client.get("/healthz")).status_code == 200
        ready = await client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"eventstore": "ok", "broker": "ok", "relay": "ok"}


async def test_not_ready_when_the_broker_is_gone(memory_store: EventStore) -> None:
    bus = MemoryBus()
    await bus.close()
    relay = Relay(memory_store, RecordingPublisher(), SoleLeadership())
    async with client_for(relay, memory_store, bus) as client:
        ready = await client.get("/readyz")
        alive = await client.get("/healthz")
    assert ready.status_code == 503
    assert ready.headers["content-type"] == "application/problem+json"
    assert ready.json()["checks"]["broker"] == "error: BusClosed"
    assert alive.status_code == 200  # liveness never looks at dependencies


async def test_not_ready_once_the_relay_stopped(memory_store: EventStore) -> None:
    relay = Relay(memory_store, RecordingPublisher(), SoleLeadership())
    relay.status.role = "stopped"
    async with client_for(relay, memory_store, MemoryBus()) as client:
        ready = await client.get("/readyz")
    assert ready.status_code == 503
    assert ready.json()["checks"]["relay"].startswith("error")


async def test_metrics_expose_the_role_and_progress(memory_store: EventStore) -> None:
    relay = Relay(memory_store, RecordingPublisher(), SoleLeadership())
    relay.metrics.set_active(True)
    async with client_for(relay, memory_store, MemoryBus()) as client:
        text = (await client.get("/metrics")).text
    assert "chronicle_relay_active 1.0" in text
    assert "chronicle_relay_published_events_total 0.0" in text
    assert "chronicle_relay_lag_seconds_bucket" in text
