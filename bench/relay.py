"""Relay throughput and lag: PostgreSQL log -> relay -> RabbitMQ with publisher confirms.

(a) baseline: raw aio-pika publishing N event-sized persistent messages with publisher
    confirms, a sliding window of W unconfirmed messages, both through
    ``Exchange.publish`` and through the channel's ``basic_publish`` without waiting
    for each socket write (the relay's way); the faster of the two is the baseline;
(b) the relay draining a pre-filled log of N events from a scratch PostgreSQL database
    (default settings: batches of 500, 4 batches in flight), timed from start until the
    broker confirmed the last event;
(c) lag from append (the append call returned) to broker confirm, p50/p99, with a
    writer appending one event at a time at R appends/s for a bounded run, through a
    store instance of its own (the relay only learns of appends by polling, as it does
    from another process).

(a) and (b) publish to the same exchange of the same RabbitMQ, routed to the same
stream, in one run, alternating for ``--rounds`` rounds (the best of each counts).
The scratch database and the broker objects (unique names) are removed at the end.

    python -m bench.relay [--events 20000] [--window 2000] [--rate 500] [--seconds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import aio_pika

from bench.common import create_scratch_database, drop_database, print_table, report
from chronicle.migrations import all_migrations
from eventstore import EventStore, NewEvent, open_event_store
from eventstore.bus import Envelope, EventBus, Topology, encode, open_bus
from eventstore.leader import lock_key
from eventstore.migrations import migrate
from eventstore.relay import PostgresLeadership, Relay, RelayConfig
from eventstore.urls import parse_database_url

AMQP_URL = os.environ.get("CHRONICLE_BENCH_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
PAYLOAD = {"account_id": "account-0001", "amount": 1250, "currency": "EUR", "note": "x" * 120}


@dataclass(frozen=True)
class Run:
    name: str
    events: int
    seconds: float

    @property
    def rate(self) -> float:
        return self.events / self.seconds


def new_event(i: int) -> NewEvent:
    metadata = {"correlation_id": str(uuid.uuid4()), "traceparent": f"00-{i:032x}-{i:016x}-01"}
    return NewEvent("MoneyDeposited", {**PAYLOAD, "amount": i}, metadata)


async def prefill(store: EventStore, count: int, writers: int = 8) -> None:
    """Append ``count`` events in batches of 100 over many streams (not timed)."""
    per_writer = count // writers

    async def write(w: int) -> None:
        for start in range(0, per_writer, 100):
            n = min(100, per_writer - start)
            stream = f"account-{w}x{start // 100}"
            await store.append(stream, [new_event(start + i) for i in range(n)])

    await asyncio.gather(*(write(w) for w in range(writers)))


async def windowed(count: int, window: int, publish: Callable[[int], Awaitable[object]]) -> float:
    """Run ``publish(i)`` for every i with at most ``window`` unconfirmed; return seconds."""
    slots = asyncio.Semaphore(window)
    pending: set[asyncio.Task[object]] = set()

    def done(task: asyncio.Task[object]) -> None:
        slots.release()
        pending.discard(task)

    start = time.perf_counter()
    for i in range(count):
        await slots.acquire()
        task = asyncio.create_task(publish(i))
        task.add_done_callback(done)
        pending.add(task)
    await asyncio.gather(*pending)  # raises the first failure, if any
    return time.perf_counter() - start


async def baseline(
    sample: Envelope, exchange_name: str, count: int, window: int, low_level: bool
) -> Run:
    """(a): raw aio-pika, persistent messages, confirms, sliding window: through
    ``Exchange.publish``, or (``low_level``) through the channel's ``basic_publish``
    without waiting for the socket write, which is what the relay does."""
    connection = await aio_pika.connect(AMQP_URL)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        exchange = await channel.get_exchange(exchange_name)
        underlay = await channel.get_underlay_channel()

        def message(i: int) -> aio_pika.Message:
            return aio_pika.Message(
                sample.body,
                message_id=f"{i}-{uuid.uuid4()}",
                headers=dict(sample.headers),
                content_type="application/json",
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                type=sample.event_type,
                timestamp=sample.recorded_at,
            )

        async def high(i: int) -> object:
            return await exchange.publish(message(i), sample.routing_key, mandatory=False)

        async def low(i: int) -> object:
            return await underlay.basic_publish(  # type: ignore[call-arg]
                sample.body,
                exchange=exchange_name,
                routing_key=sample.routing_key,
                properties=message(i).properties,
                wait=False,
            )

        seconds = await windowed(count, window, low if low_level else high)
    how = "channel.basic_publish" if low_level else "Exchange.publish"
    return Run(f"(a) raw aio-pika {how}, confirms, window", count, seconds)


def relay_for(
    url: str, store: EventStore, publisher: EventBus | TimedPublisher, name: str
) -> Relay:
    """A relay with default settings, leading through the advisory lock as in production."""
    leadership = PostgresLeadership(parse_database_url(url).dsn, lock_key(name))
    return Relay(store, publisher, leadership, RelayConfig(name=name))


async def drain(url: str, store: EventStore, bus: EventBus, count: int, name: str) -> Run:
    """(b): the relay publishes the whole pre-filled log from a fresh checkpoint."""
    head = await store.head_position()
    relay = relay_for(url, store, bus, name)
    stop = asyncio.Event()
    start = time.perf_counter()
    task = asyncio.create_task(relay.run(stop))
    while relay.status.confirmed_position < head:
        if task.done():
            task.result()
        await asyncio.sleep(0.002)
    seconds = time.perf_counter() - start
    stop.set()
    await task
    return Run("(b) relay draining the PostgreSQL log", count, seconds)


class TimedPublisher:
    """The bus, noting when each message was handed to it (the relay has read it from
    the log) and when the broker confirmed it."""

    def __init__(self, bus: EventBus) -> None:
        self._bus = bus
        self.sent: dict[str, float] = {}
        self.confirmed: dict[str, float] = {}

    async def publish(self, messages: Sequence[Envelope]) -> None:
        sent = time.perf_counter()
        await self._bus.publish(messages)
        now = time.perf_counter()
        for message in messages:
            self.sent.setdefault(message.message_id, sent)
            self.confirmed.setdefault(message.message_id, now)


@dataclass(frozen=True)
class Lags:
    """Milliseconds, sorted: append -> confirm, and its two parts."""

    total: list[float]
    to_read: list[float]
    to_confirm: list[float]


async def lag(url: str, bus: EventBus, rate: float, seconds: float) -> Lags:
    """(c): milliseconds from append to confirm, appending at ``rate`` per second."""
    relay_store = await open_event_store(url)
    writer_store = await open_event_store(url)
    timed = TimedPublisher(bus)
    relay = relay_for(url, relay_store, timed, "bench-lag")
    await relay_store.save_checkpoint("bench-lag", await relay_store.head_position())
    stop = asyncio.Event()
    task = asyncio.create_task(relay.run(stop))
    appended: dict[str, float] = {}
    try:
        start = time.perf_counter()
        for i in range(int(rate * seconds)):
            await asyncio.sleep(max(0.0, start + i / rate - time.perf_counter()))
            event = new_event(i)
            await writer_store.append(f"account-lag{i % 50}", [event])
            appended[str(event.event_id)] = time.perf_counter()
        deadline = time.perf_counter() + 30
        while not appended.keys() <= timed.confirmed.keys() and time.perf_counter() < deadline:
            await asyncio.sleep(0.01)
    finally:
        stop.set()
        await task
        await relay_store.close()
        await writer_store.close()
    missing = appended.keys() - timed.confirmed.keys()
    if missing:
        raise RuntimeError(f"{len(missing)} events were not confirmed within 30 s")
    return Lags(
        sorted((timed.confirmed[i] - t) * 1000 for i, t in appended.items()),
        sorted((timed.sent[i] - t) * 1000 for i, t in appended.items()),
        sorted((timed.confirmed[i] - timed.sent[i]) * 1000 for i in appended),
    )


async def sample_envelope(store: EventStore) -> Envelope:
    (event,) = await store.read_all(0, 1)
    return encode(event, 0)


async def cleanup(topology: Topology) -> None:
    connection = await aio_pika.connect(AMQP_URL)
    async with connection:
        channel = await connection.channel()
        await channel.queue_delete(topology.broadcast)
        await channel.exchange_delete(topology.exchange)


async def main(events: int, window: int, rate: float, seconds: float, rounds: int) -> None:
    name, url = await create_scratch_database("bench_relay")
    topology = Topology(prefix=f"bench_relay_{uuid.uuid4().hex[:8]}")
    bus = open_bus(AMQP_URL, topology)
    try:
        await migrate(url, all_migrations())
        store = await open_event_store(url)
        await prefill(store, events)
        await bus.declare()
        sample = await sample_envelope(store)
        results: dict[str, list[Run]] = {"a": [], "b": []}
        for r in range(rounds):
            for low_level in (False, True):
                run = await baseline(sample, topology.exchange, events, window, low_level)
                results["a"].append(run)
            results["b"].append(await drain(url, store, bus, events, f"bench-{r}"))
        lags = await lag(url, bus, rate, seconds)
        await store.close()
        summarize(results, lags, events, window, rate, seconds, len(sample.body))
    finally:
        await bus.close()
        await cleanup(topology)
        await drop_database(name)


def summarize(
    results: dict[str, list[Run]],
    lags: Lags,
    events: int,
    window: int,
    rate: float,
    seconds: float,
    body_bytes: int,
) -> None:
    best_a = max(results["a"], key=lambda run: run.rate)
    best_b = max(results["b"], key=lambda run: run.rate)
    rows = [
        (run.name, str(run.events), f"{run.seconds:.2f}", f"{run.rate:,.0f}")
        for run in (*results["a"], *results["b"])
    ]
    print_table(
        f"Relay throughput: {events} events of {body_bytes} bytes, window {window}",
        rows,
        ("case", "events", "seconds", "events/s"),
    )
    rows = [
        (part, str(len(values)), *(f"{q:.1f}" for q in quantiles(values)))
        for part, values in (
            ("append -> broker confirm", lags.total),
            ("  append -> read by the relay", lags.to_read),
            ("  read -> broker confirm", lags.to_confirm),
        )
    ]
    print_table(
        f"Lag at {rate:.0f} appends/s for {seconds:.0f} s (load average {os.getloadavg()[0]:.1f})",
        rows,
        ("part", "events", "p50 ms", "p99 ms", "max ms"),
    )
    p50, p99, _ = quantiles(lags.total)
    print(f"\nratio (b)/(a), best of each: {best_b.rate / best_a.rate:.2f}")
    report(
        "relay",
        best_b.rate,
        best_a.rate,
        "events/s",
        lag_p50_ms=round(p50, 2),
        lag_p99_ms=round(p99, 2),
    )


def quantiles(values: list[float]) -> tuple[float, float, float]:
    """p50, p99 and max of sorted ``values``."""
    return (
        statistics.median(values),
        values[min(len(values) - 1, int(len(values) * 0.99))],
        values[-1],
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--window", type=int, default=2_000)
    parser.add_argument("--rate", type=float, default=500.0)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    asyncio.run(main(args.events, args.window, args.rate, args.seconds, args.rounds))
