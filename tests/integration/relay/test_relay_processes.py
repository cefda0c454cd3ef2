"""`chronicle serve relay` as real processes: killed with SIGKILL, and run two at once."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from eventstore import EventStore
from tests.integration.relay.conftest import Broker, Collector, RelayProcess
from tests.unit.relay.helpers import append_events, wait_until

pytestmark = [pytest.mark.postgres, pytest.mark.rabbitmq, pytest.mark.slow]


def relay_env(pg_url: str, broker: Broker) -> dict[str, str]:
    return {
        **broker.env(),
        "CHRONICLE_EVENTSTORE_URL": pg_url,
        "CHRONICLE_RELAY_BATCH_SIZE": "20",
        "CHRONICLE_RELAY_RETRY_MAX_DELAY": "0.5",
        "CHRONICLE_RELAY_LOCK_RETRY_INTERVAL": "0.2",
    }


async def test_a_relay_killed_mid_stream_loses_nothing(
    pg_url: str,
    pg_store: EventStore,
    broker: Broker,
    relay_processes: list[RelayProcess],
    tmp_path: Path,
) -> None:
    spec = broker.queue("killed")
    consumer = broker.bus()
    await consumer.declare([spec])
    env = relay_env(pg_url, broker)
    appended = await append_events(pg_store, 1000, per_append=10, tag="before")
    async with Collector(consumer, spec) as collector:
        first = RelayProcess(env, tmp_path, "first").start()
        relay_processes.append(first)
        await wait_until(lambda: len(collector.deliveries) >= 150, 20, "the first deliveries")
        first.kill()
        published_before_kill = len(collector.ids())
        appended += await append_events(pg_store, 200, per_append=10, tag="after")
        second = RelayProcess(env, tmp_path, "second").start()
        relay_processes.append(second)
        await wait_until(lambda: collector.has_all(appended), 30, "every event after restart")
        await second.wait_ready()
    assert published_before_kill < 1000  # killed mid-stream
    applied, duplicates = collector.apply_like_a_consumer(first, second)
    assert applied == sorted(appended, key=lambda e: e.position)
    assert len(collector.deliveries) == len(applied) + duplicates
    assert second.terminate() == 0, second.log()


async def test_two_relays_one_publishes_the_standby_takes_over(
    pg_url: str,
    pg_store: EventStore,
    broker: Broker,
    relay_processes: list[RelayProcess],
    tmp_path: Path,
) -> None:
    spec = broker.queue("pair")
    consumer = broker.bus()
    await consumer.declare([spec])
    env = relay_env(pg_url, broker)
    relays = [RelayProcess(env, tmp_path, f"relay{i}").start() for i in range(2)]
    relay_processes.extend(relays)
    for relay in relays:
        await relay.wait_ready()

    async def one_active() -> bool:
        return sorted([await r.metric("chronicle_relay_active") for r in relays]) == [0, 1]

    await wait_until(one_active, 10, "exactly one active relay")
    active, standby = sorted(relays, key=lambda r: r.port)
    if await active.metric("chronicle_relay_active") == 0:
        active, standby = standby, active

    async with Collector(consumer, spec) as collector:
        first = await append_events(pg_store, 100, per_append=2)
        await wait_until(lambda: collector.has_all(first), 20, "the first events")
        assert await standby.metric("chronicle_relay_published_events_total") == 0
        assert len(collector.deliveries) == len(first)  # one publisher: no duplicates

        active.kill()
        killed = time.monotonic()
        second = await append_events(pg_store, 100, per_append=2)
        await wait_until(lambda: collector.has_all(second), 20, "the events after the kill")
        takeover = time.monotonic() - killed
    assert await standby.metric("chronicle_relay_active") == 1
    # Lock retry 0.2 s, then the pump starts; the bound leaves room for a loaded machine.
    assert takeover < 10, f"the standby took {takeover:.1f}s to take over"
    applied, _ = collector.apply_like_a_consumer(active, standby)
    assert applied == sorted([*first, *second], key=lambda e: e.position)
    assert standby.terminate() == 0, standby.log()
