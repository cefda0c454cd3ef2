"""The event store's append metrics and the log probe, on SQLite (no network)."""

from __future__ import annotations

import uuid

import pytest
from prometheus_client import CollectorRegistry

from eventstore import ConcurrencyError, NewEvent, open_event_store
from eventstore.metrics import StoreMetrics, StoreMetricsView
from eventstore.probe import LogProbe


def _value(registry: CollectorRegistry, name: str, **labels: str) -> float:
    found = registry.get_sample_value(name, labels)
    return 0.0 if found is None else found


async def test_appends_conflicts_and_replays_are_counted() -> None:
    store = await open_event_store("sqlite://:memory:")
    try:
        registry = store.metrics.registry  # type: ignore[attr-defined]
        stream = f"account-{uuid.uuid4().hex[:8]}"
        first = NewEvent("Opened", {"owner": "ann"})
        await store.append(stream, [first, NewEvent("Deposited", {"amount": 1})], 0)
        await store.append(stream, [first], 0)  # the same event id again: a replay
        with pytest.raises(ConcurrencyError):
            await store.append(stream, [NewEvent("Deposited", {"amount": 2})], 0)
        labels = {"backend": "sqlite"}
        assert _value(registry, "chronicle_eventstore_appended_events_total", **labels) == 2
        assert _value(registry, "chronicle_eventstore_idempotent_replays_total", **labels) == 1
        assert _value(registry, "chronicle_eventstore_concurrency_conflicts_total", **labels) == 1
        assert _value(registry, "chronicle_eventstore_append_seconds_count", **labels) == 3
        assert _value(registry, "chronicle_eventstore_append_batch_events_sum", **labels) == 4
    finally:
        await store.close()


async def test_a_view_serves_the_current_stores_metrics_in_another_registry() -> None:
    store = await open_event_store("sqlite://:memory:")
    current: list[object] = []
    process = CollectorRegistry()
    process.register(StoreMetricsView(lambda: current[0] if current else None))
    try:
        await store.append("account-1", [NewEvent("Opened", {})])
        name = "chronicle_eventstore_appended_events_total"
        assert process.get_sample_value(name, {"backend": "sqlite"}) is None
        current.append(store)
        assert process.get_sample_value(name, {"backend": "sqlite"}) == 1
        current[0] = object()  # anything without store metrics shows nothing
        assert process.get_sample_value(name, {"backend": "sqlite"}) is None
    finally:
        await store.close()


async def test_the_probe_reports_head_fence_and_follower_lag() -> None:
    store = await open_event_store("sqlite://:memory:")
    try:
        result = await store.append("account-1", [NewEvent("Opened", {})] * 1)
        await store.append("account-2", [NewEvent("Opened", {}), NewEvent("Opened", {})])
        head = await store.head_position()
        probe = LogProbe(store, {"relay": lambda: result.position, "bridge": lambda: head})
        await probe.sample()
        registry = probe.registry
        assert _value(registry, "chronicle_log_head_position") == head
        assert _value(registry, "chronicle_log_oldest_write_transaction_seconds") == 0
        lag = "chronicle_follower_lag_events"
        assert _value(registry, lag, follower="relay") == head - result.position > 0
        assert _value(registry, lag, follower="bridge") == 0
    finally:
        await store.close()


def test_metrics_of_two_stores_never_collide() -> None:
    StoreMetrics("sqlite")
    StoreMetrics("sqlite")
