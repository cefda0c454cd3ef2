"""The read side against the machine's PostgreSQL and RabbitMQ: a fresh database per
test, a broker prefix of its own (deleted afterwards), the relay running in-process,
and the projector either in-process or as a `chronicle serve projector` subprocess."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aio_pika
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from eventstore import EventStore, open_event_store
from eventstore.bus import EventBus, Topology, open_bus
from eventstore.relay import Relay, RelayConfig, leadership_for
from projections.bank import bank_projections
from projections.db import open_engine
from projections.parking import AmqpParkingLot, parked_queue
from projections.projector import Projector, queue_spec, queue_specs
from projections.runner import RunnerConfig
from tests import services

CHRONICLE = str(Path(sys.executable).parent / "chronicle")
FAST = RunnerConfig(batch_size=200, prefetch=500, max_attempts=3, retry_delay=0.02)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def wait_for(
    condition: Callable[[], bool | Awaitable[bool]], timeout: float = 20.0, what: str = "it"
) -> None:
    """Poll ``condition`` until it holds; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {timeout}s")
        await asyncio.sleep(0.01)


@dataclass
class Stack:
    """Store, bus and relay on real services; projectors started on demand."""

    url: str
    amqp_url: str
    prefix: str
    store: EventStore
    bus: EventBus
    engine: AsyncEngine
    running: list[tuple[asyncio.Event, asyncio.Task[None]]] = field(default_factory=list)
    parking_lots: list[AmqpParkingLot] = field(default_factory=list)

    @property
    def topology(self) -> Topology:
        return Topology(prefix=self.prefix)

    def env(self, **extra: str) -> dict[str, str]:
        return {
            **os.environ,
            "CHRONICLE_EVENTSTORE_URL": self.url,
            "CHRONICLE_BROKER_URL": self.amqp_url,
            "CHRONICLE_BROKER_PREFIX": self.prefix,
            "CHRONICLE_LOG_LEVEL": "WARNING",
            **extra,
        }

    def start(self, main: Callable[[asyncio.Event], Awaitable[None]]) -> asyncio.Event:
        stop = asyncio.Event()
        self.running.append((stop, asyncio.create_task(main(stop))))  # type: ignore[arg-type]
        return stop

    def start_relay(self) -> None:
        config = RelayConfig(name=f"relay_{self.prefix}", poll_max_delay=0.01)
        relay = Relay(self.store, self.bus, leadership_for(self.url, config), config)
        self.start(relay.run)

    def projector(self, config: RunnerConfig = FAST) -> Projector:
        parking = AmqpParkingLot(self.amqp_url, self.topology)
        self.parking_lots.append(parking)  # closed with the stack, as the CLI closes it
        return Projector(
            bank_projections(),
            engine=self.engine,
            store=self.store,
            bus=self.bus,
            parking=parking,
            config=config,
        )

    async def stop_all(self) -> None:
        for stop, _ in self.running:
            stop.set()
        async with asyncio.timeout(20):
            for _, task in self.running:
                await task
        self.running.clear()
        for parking in self.parking_lots:
            await parking.close()
        self.parking_lots.clear()

    async def purge(self) -> int:
        """Purge the projector's queue; return how many messages it removed."""
        connection = await aio_pika.connect(self.amqp_url)
        async with connection:
            channel = await connection.channel()
            queue = await channel.declare_queue(self._queue_name, passive=True)
            result = await queue.purge()
            return int(result.message_count)

    async def ready(self) -> int:
        """How many messages wait in the projector's queue, not yet delivered."""
        connection = await aio_pika.connect(self.amqp_url)
        async with connection:
            channel = await connection.channel()
            queue = await channel.declare_queue(self._queue_name, passive=True)
            return int(queue.declaration_result.message_count or 0)

    @property
    def _queue_name(self) -> str:
        return self.topology.queue_name(queue_spec().name)

    async def parked(self, projection: str) -> list[aio_pika.abc.AbstractIncomingMessage]:
        connection = await aio_pika.connect(self.amqp_url)
        found = []
        async with connection:
            channel = await connection.channel()
            name = parked_queue(self.topology, projection)
            queue = await channel.declare_queue(name, passive=True)
            while (message := await queue.get(fail=False)) is not None:
                found.append(message)
        return found


async def delete_broker_objects(amqp_url: str, topology: Topology) -> None:
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        names = [topology.broadcast]
        names += [topology.queue_name(spec.name) for spec in queue_specs()]
        names += [parked_queue(topology, p.name) for p in bank_projections()]
        for name in names:
            channel = await connection.channel()
            with contextlib.suppress(aio_pika.exceptions.AMQPError):
                await channel.queue_delete(name)
        channel = await connection.channel()
        with contextlib.suppress(aio_pika.exceptions.AMQPError):
            await channel.exchange_delete(topology.exchange)


@pytest.fixture
async def stack(pg_url: str, amqp_url: str) -> AsyncIterator[Stack]:
    prefix = services.unique_name("t_proj")
    store = await open_event_store(pg_url)
    bus = open_bus(amqp_url, Topology(prefix=prefix), queues=queue_specs())
    engine = open_engine(pg_url, writer=True)
    built = Stack(pg_url, amqp_url, prefix, store, bus, engine)
    try:
        await bus.declare(queue_specs())
        yield built
    finally:
        await built.stop_all()
        await bus.close()
        await engine.dispose()
        await store.close()
        await delete_broker_objects(amqp_url, built.topology)


@dataclass
class Subprocess:
    """A `chronicle` subprocess, killed (SIGKILL) or stopped (SIGTERM) by the test."""

    args: list[str]
    env: dict[str, str]
    log: Path
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [CHRONICLE, *self.args],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()


def run_cli(args: list[str], env: dict[str, str], timeout: float = 60) -> Any:
    return subprocess.run(
        [CHRONICLE, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
