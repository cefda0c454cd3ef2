"""Fixtures of the observability tests: an in-memory span exporter behind the process's
tracer provider, and the whole pipeline in this process on SQLite and the memory bus."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from chronicle.migrations import all_migrations
from chronicle.runtime import Resources
from chronicle.topology import projection_queues
from eventstore import open_event_store, tracing
from eventstore.bus import BrokerSettings, open_bus
from tests.integration.observability.pipeline import Pipeline, running

_EXPORTER = InMemorySpanExporter()

EMBEDDED = {"eventstore_url": "sqlite://:memory:", "broker_url": "memory://"}
ALL = ("commands", "relay", "projector", "queries", "bridge")


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """Finished spans of this test. The SDK provider is installed once per test session
    (OpenTelemetry allows one global provider); a session without it keeps tracing off."""
    if not tracing.enabled():
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(_EXPORTER))
        tracing.use_provider(provider)
    _EXPORTER.clear()
    yield _EXPORTER
    _EXPORTER.clear()


@pytest.fixture
async def embedded() -> AsyncIterator[Pipeline]:
    """Every process, sharing one in-memory SQLite store and the in-process bus."""
    store = await open_event_store(EMBEDDED["eventstore_url"])
    await store.migrate(all_migrations())
    settings = BrokerSettings(**EMBEDDED)
    bus = open_bus(settings.broker_url, settings.topology(), queues=projection_queues())
    try:
        async with running(
            dict.fromkeys(ALL, EMBEDDED), Resources(store=store, bus=bus)
        ) as pipeline:
            yield pipeline
    finally:
        await bus.close()
        await store.close()
