"""Consuming from RabbitMQ: our subscription against a plain aio-pika consumer.

One run, loopback only, bounded in count:

(a) baseline: a plain aio-pika consumer of a quorum queue that does nothing with the
    body and acknowledges every K-th message with a multiple ack;
(b) ours: ``AmqpBus.consume_queue`` handing out ``Delivery`` objects (decoded events),
    acknowledged with ``ack_through`` every K deliveries;
(c), (d): the same two on the broadcast stream (what the bridge reads), from the
    offset where the round's messages begin.

Each round publishes N encoded ``RecordedEvent`` messages first (not timed); the
exchange routes every one to both queues and to the stream, so every reader gets the
same N messages. Readers alternate in order from round to round; the median of each
counts. Deliveries/s swings with the machine's load; the CPU microseconds per delivery
(this process only: the broker is another one) are steadier. The broker objects
(unique names) are removed at the end.

    python -m bench.consume [--events 30000] [--prefetch 1000] [--ack-every 250] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import aio_pika
from aio_pika.abc import AbstractIncomingMessage

from bench.common import Measurement, print_table, report
from eventstore.bus import EventBus, QueueSpec, StreamStart, Topology, encode, open_bus
from eventstore.model import RecordedEvent

AMQP_URL = os.environ.get("CHRONICLE_BENCH_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
PAYLOAD = {"account_id": "account-0001", "amount": 1250, "currency": "EUR", "note": "x" * 120}
TIMEOUT = 120.0


def recorded(position: int) -> RecordedEvent:
    metadata = {
        "correlation_id": str(uuid.uuid4()),
        "traceparent": f"00-{position:032x}-{position:016x}-01",
    }
    return RecordedEvent(
        event_id=uuid.uuid4(),
        stream_id=f"account-{position % 500}",
        version=position // 500 + 1,
        position=position,
        type="MoneyDeposited",
        data={**PAYLOAD, "amount": position},
        metadata=metadata,
        recorded_at=datetime.now(UTC),
    )


async def publish_round(bus: EventBus, first: int, count: int) -> None:
    """Publish ``count`` chained events from position ``first`` (not timed)."""
    previous = first - 1
    for start in range(first, first + count, 1000):
        envelopes = []
        for position in range(start, min(start + 1000, first + count)):
            envelopes.append(encode(recorded(position), previous))
            previous = position
        await bus.publish(envelopes)


async def timed(name: str, count: int, run: Callable[[], Awaitable[None]]) -> Measurement:
    cpu = time.process_time()
    start = time.perf_counter()
    await asyncio.wait_for(run(), TIMEOUT)
    seconds = time.perf_counter() - start
    return Measurement(name, 1, count, seconds, time.process_time() - cpu)


async def raw(
    queue_name: str, count: int, prefetch: int, ack_every: int, arguments: dict[str, object]
) -> None:
    """(a)/(c): aio-pika's own consumer, the body untouched, a multiple ack every K."""
    connection = await aio_pika.connect(AMQP_URL)
    async with connection:
        channel = await connection.channel(publisher_confirms=False)
        await channel.set_qos(prefetch_count=prefetch)
        queue = await channel.get_queue(queue_name, ensure=False)
        done = asyncio.Event()
        received = 0

        async def on_message(message: AbstractIncomingMessage) -> None:
            nonlocal received
            received += 1
            if received % ack_every == 0 or received == count:
                await message.ack(multiple=True)
            if received == count:
                done.set()

        tag = await queue.consume(on_message, arguments=arguments)  # type: ignore[arg-type]
        await done.wait()
        await queue.cancel(tag)


async def ours_queue(bus: EventBus, spec: QueueSpec, count: int, prefetch: int, every: int) -> None:
    """(b): the bus's subscription, every delivery decoded, ``ack_through`` every K."""
    received = 0
    async with bus.consume_queue(spec, prefetch=prefetch) as subscription:
        async for delivery in subscription:
            received += 1
            if received % every == 0 or received == count:
                await delivery.ack_through()
            if received == count:
                return


async def ours_broadcast(
    bus: EventBus, start: StreamStart, count: int, prefetch: int, every: int
) -> int:
    """(d): the broadcast read from ``start``; returns the offset after the last one."""
    received = 0
    async with bus.consume_broadcast(start=start, prefetch=prefetch) as subscription:
        async for delivery in subscription:
            received += 1
            if received % every == 0 or received == count:
                await delivery.ack_through()
            if received == count:
                assert delivery.offset is not None
                return delivery.offset + 1
    raise RuntimeError("the broadcast ended early")


async def one_round(
    r: int,
    bus: EventBus,
    topology: Topology,
    specs: tuple[QueueSpec, QueueSpec],
    start: StreamStart,
    args: argparse.Namespace,
) -> tuple[list[Measurement], StreamStart]:
    n, prefetch, every = args.events, args.prefetch, args.ack_every
    await publish_round(bus, r * n + 1, n)
    raw_spec, our_spec = specs
    runs: list[tuple[str, Callable[[], Awaitable[object]]]] = [
        (
            "(a) raw aio-pika, queue",
            lambda: raw(topology.queue_name(raw_spec.name), n, prefetch, every, {}),
        ),
        ("(b) ours consume_queue", lambda: ours_queue(bus, our_spec, n, prefetch, every)),
        (
            "(c) raw aio-pika, broadcast",
            lambda: raw(topology.broadcast, n, prefetch, every, {"x-stream-offset": start}),
        ),
    ]
    after: list[int] = []

    async def broadcast() -> None:
        after.append(await ours_broadcast(bus, start, n, prefetch, every))

    runs.append(("(d) ours consume_broadcast", broadcast))
    order = runs if r % 2 == 0 else [runs[1], runs[0], runs[3], runs[2]]
    measured = [await timed(name, n, run) for name, run in order]  # type: ignore[arg-type]
    return sorted(measured, key=lambda m: m.name), after[0]


async def cleanup(topology: Topology, queues: list[str]) -> None:
    connection = await aio_pika.connect(AMQP_URL)
    async with connection:
        channel = await connection.channel()
        for name in queues:
            await channel.queue_delete(topology.queue_name(name))
        await channel.queue_delete(topology.broadcast)
        await channel.exchange_delete(topology.exchange)


async def main(args: argparse.Namespace) -> None:
    topology = Topology(prefix=f"bench_consume_{uuid.uuid4().hex[:8]}")
    specs = (QueueSpec("raw"), QueueSpec("ours"))
    bus = open_bus(AMQP_URL, topology)
    results: dict[str, list[Measurement]] = {}
    try:
        await bus.declare(specs)
        start: StreamStart = "first"
        for r in range(args.rounds):
            measured, start = await one_round(r, bus, topology, specs, start, args)
            for m in measured:
                results.setdefault(m.name, []).append(m)
                print(
                    f"round {r + 1}: {m.name}: {m.items_per_second:,.0f}/s, "
                    f"{m.cpu_us_per_item[0]:.1f} us CPU per delivery"
                )
    finally:
        await bus.close()
        await cleanup(topology, [s.name for s in specs])
    print_and_report(results, args)


def print_and_report(results: dict[str, list[Measurement]], args: argparse.Namespace) -> None:
    rate = {k: statistics.median(m.items_per_second for m in v) for k, v in results.items()}
    cpu = {k: statistics.median(m.cpu_us_per_item[0] for m in v) for k, v in results.items()}
    rows: list[tuple[str, ...]] = [
        (name, f"{rate[name]:,.0f}", f"{cpu[name]:.1f}") for name in sorted(results)
    ]
    print_table(
        f"{args.events:,} deliveries per reader and round, prefetch {args.prefetch}, ack every "
        f"{args.ack_every}, median of {args.rounds} rounds (load average "
        f"{os.getloadavg()[0]:.1f})",
        rows,
        ("reader", "deliveries/s", "CPU us/delivery"),
    )
    a, b, c, d = sorted(results)
    report(
        "consume",
        rate[b],
        rate[a],
        "deliveries/s",
        ours_cpu_us=round(cpu[b], 2),
        baseline_cpu_us=round(cpu[a], 2),
        cpu_ratio=round(cpu[b] / cpu[a], 3),
        broadcast_ours_cpu_us=round(cpu[d], 2),
        broadcast_baseline_cpu_us=round(cpu[c], 2),
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=30_000)
    parser.add_argument("--prefetch", type=int, default=1000)
    parser.add_argument("--ack-every", type=int, default=250)
    parser.add_argument("--rounds", type=int, default=3)
    asyncio.run(main(parser.parse_args()))
