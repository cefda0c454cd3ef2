"""Fixtures of the relay's integration tests: an isolated corner of the shared RabbitMQ
(a unique prefix, deleted afterwards), relay subprocesses, free ports."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit
from uuid import UUID

import aio_pika
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from chronicle import run_relay
from chronicle.topology import projection_queues
from eventstore import EventStore, RecordedEvent, open_event_store
from eventstore.bus import Delivery, EventBus, QueueSpec, Topology, open_bus
from eventstore.relay import RelaySettings
from tests import services
from tests.tcp_proxy import TcpProxy
from tests.unit.relay.helpers import wait_until

STREAM_MAX_BYTES = 20 << 20
STREAM_SEGMENT_BYTES = 1 << 20


def sample(metrics_text: str, name: str) -> float:
    """The value of the unlabelled sample ``name`` in Prometheus text."""
    for family in text_string_to_metric_families(metrics_text):
        for found in family.samples:
            if found.name == name and not found.labels:
                return float(found.value)
    raise AssertionError(f"no metric {name}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Broker:
    """A prefix of our own on the shared broker, and the buses opened on it."""

    url: str
    prefix: str = field(default_factory=lambda: services.unique_name("t_relay"))
    queues: list[str] = field(default_factory=list)
    buses: list[EventBus] = field(default_factory=list)

    @property
    def topology(self) -> Topology:
        return Topology(
            prefix=self.prefix,
            stream_max_bytes=STREAM_MAX_BYTES,
            stream_segment_bytes=STREAM_SEGMENT_BYTES,
        )

    def env(self, url: str | None = None) -> dict[str, str]:
        """The environment that gives a process this broker and topology."""
        return {
            "CHRONICLE_BROKER_URL": url or self.url,
            "CHRONICLE_BROKER_PREFIX": self.prefix,
            "CHRONICLE_BROKER_STREAM_MAX_BYTES": str(STREAM_MAX_BYTES),
            "CHRONICLE_BROKER_STREAM_SEGMENT_BYTES": str(STREAM_SEGMENT_BYTES),
        }

    def settings(self, url: str | None = None, **overrides: object) -> RelaySettings:
        """Relay settings on this broker and topology (fast retries for tests)."""
        values: dict[str, object] = {
            "broker_url": url or self.url,
            "broker_prefix": self.prefix,
            "broker_stream_max_bytes": STREAM_MAX_BYTES,
            "broker_stream_segment_bytes": STREAM_SEGMENT_BYTES,
            "relay_retry_max_delay": 0.5,
            "http_port": free_port(),
            **overrides,
        }
        return RelaySettings(**values)  # type: ignore[arg-type]

    def queue(self, name: str, *keys: str) -> QueueSpec:
        """A projection queue spec, deleted from the broker after the test."""
        self.queues.append(name)
        return QueueSpec(name, keys or ("#",))

    def bus(self, url: str | None = None) -> EventBus:
        bus = open_bus(url or self.url, self.topology)
        self.buses.append(bus)
        return bus

    async def cleanup(self) -> None:
        for bus in self.buses:
            await bus.close()
        connection = await aio_pika.connect(self.url)
        async with connection:
            channel = await connection.channel()
            # The relay declares every projection's queue too, under this prefix.
            names = {*self.queues, *(spec.name for spec in projection_queues())}
            for name in names:
                await channel.queue_delete(self.topology.queue_name(name))
            await channel.queue_delete(self.topology.broadcast)
            await channel.exchange_delete(self.topology.exchange)


@pytest.fixture
async def pg_store(pg_url: str) -> AsyncIterator[EventStore]:
    """The event store on the test's fresh PostgreSQL database."""
    store = await open_event_store(pg_url)
    try:
        yield store
    finally:
        await store.close()


@pytest.fixture
async def rabbitmq_proxy(amqp_url: str) -> AsyncIterator[tuple[TcpProxy, str]]:
    """A proxy in front of the shared RabbitMQ, and the AMQP URL through it."""
    target = urlsplit(amqp_url)
    async with TcpProxy(target.hostname or "127.0.0.1", target.port or 5672) as proxy:
        netloc = f"{target.username}:{target.password}@127.0.0.1:{proxy.port}"
        yield proxy, target._replace(netloc=netloc).geturl()


@contextlib.asynccontextmanager
async def relay_running(settings: RelaySettings) -> AsyncIterator[str]:
    """`serve relay` in this process; yields its HTTP base URL."""
    stop = asyncio.Event()
    task = asyncio.create_task(run_relay.serve(stop, settings=settings))
    try:
        yield f"http://127.0.0.1:{settings.http_port}"
    finally:
        stop.set()
        await asyncio.wait_for(task, 15)


@pytest.fixture
async def broker(amqp_url: str) -> AsyncIterator[Broker]:
    """RabbitMQ objects of this test only (unique prefix), deleted afterwards."""
    sandbox = Broker(amqp_url)
    try:
        yield sandbox
    finally:
        await sandbox.cleanup()


class RelayProcess:
    """`chronicle serve relay` as a subprocess, with its output in a log file."""

    def __init__(self, env: dict[str, str], log_dir: Path, name: str) -> None:
        self.port = free_port()
        self.env = {**os.environ, **env, "CHRONICLE_HTTP_PORT": str(self.port)}
        self.log_path = log_dir / f"{name}.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> RelayProcess:
        chronicle = str(Path(sys.executable).with_name("chronicle"))
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [chronicle, "serve", "relay"], env=self.env, stdout=log, stderr=log
            )
        return self

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def terminate(self) -> int:
        assert self.process is not None
        if self.process.poll() is None:
            self.process.terminate()
        return self.process.wait(15)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    async def readyz(self) -> int:
        try:
            async with httpx.AsyncClient(timeout=3) as client:
                return (await client.get(f"{self.base_url}/readyz")).status_code
        except httpx.TransportError:
            return 0

    async def metric(self, name: str) -> float:
        async with httpx.AsyncClient(timeout=3) as client:
            return sample((await client.get(f"{self.base_url}/metrics")).text, name)

    async def wait_ready(self, timeout: float = 20) -> None:
        async def ready() -> bool:
            assert self.process is not None
            if self.process.poll() is not None:
                raise AssertionError(f"relay exited early:\n{self.log()}")
            return await self.readyz() == 200

        await wait_until(ready, timeout, f"relay on {self.port} ready", interval=0.05)


@pytest.fixture
def relay_processes(tmp_path: Path) -> Iterator[list[RelayProcess]]:
    """Relay subprocesses started by the test; all stopped afterwards."""
    started: list[RelayProcess] = []
    try:
        yield started
    finally:
        for relay in started:
            if relay.process is not None and relay.process.poll() is None:
                relay.process.kill()
                relay.process.wait(10)


class Collector:
    """Consumes a queue in the background, acknowledging everything, keeping it all."""

    def __init__(self, bus: EventBus, spec: QueueSpec) -> None:
        self.deliveries: list[Delivery] = []
        self._bus = bus
        self._spec = spec
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Collector:
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    async def _run(self) -> None:
        async with self._bus.consume_queue(self._spec, prefetch=500) as subscription:
            async for delivery in subscription:
                self.deliveries.append(delivery)
                await delivery.ack()

    def ids(self) -> set[UUID]:
        return {d.event.event_id for d in self.deliveries}

    def has_all(self, events: list[RecordedEvent]) -> bool:
        return {e.event_id for e in events} <= self.ids()

    def apply_like_a_consumer(self, *relays: RelayProcess) -> tuple[list[RecordedEvent], int]:
        """Replay the deliveries as a projection would: skip positions already applied,
        and check that every new one follows the last applied (no gap, no disorder).
        Returns the applied events and how many duplicates were skipped. A failure
        shows the deliveries around the culprit and the logs of ``relays``."""
        applied: list[RecordedEvent] = []
        seen: dict[UUID, int] = {}
        duplicates = 0
        for index, delivery in enumerate(self.deliveries):
            event = delivery.event
            last = applied[-1].position if applied else 0
            if event.position <= last:
                if seen.get(event.event_id) != event.position:
                    raise AssertionError(self._report(f"{event} is no duplicate", index, relays))
                duplicates += 1
                continue
            if delivery.previous_position != last:
                raise AssertionError(self._report(f"gap before {event.position}", index, relays))
            applied.append(event)
            seen[event.event_id] = event.position
        return applied, duplicates

    def _report(self, problem: str, index: int, relays: tuple[RelayProcess, ...]) -> str:
        window = self.deliveries[max(0, index - 25) : index + 45]
        lines = [
            f"{'>' if d is self.deliveries[index] else ' '} position={d.position} "
            f"previous={d.previous_position} redelivered={d.redelivered}"
            for d in window
        ]
        logs = [f"--- {relay.log_path.name}\n{relay.log()[-6000:]}" for relay in relays]
        return "\n".join([problem, f"deliveries {len(self.deliveries)}:", *lines, *logs])
