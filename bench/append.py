"""Append throughput on PostgreSQL: Chronicle's append against a raw insert baseline.

(a) baseline: plain asyncpg INSERT into a bigserial table with a unique
    (stream_id, version) and no ordering guarantee, single-event transactions;
(b) Chronicle ``append`` (idempotent, version-checked, read-order safe), same load;
(c) batches of 100 events per call against a raw 100-row insert;
(d) the ``eventsourcing`` library's PostgreSQL application recorder, same single-event
    appends (install the ``bench`` extra), from threads since it is synchronous.

All against one scratch database of the same server, in one run.
Usage: python -m bench.append [--seconds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from urllib.parse import urlsplit

import asyncpg

from bench.common import (
    Measurement,
    ServerCpu,
    create_scratch_database,
    drop_database,
    print_table,
    report,
    run_for,
)
from eventstore import ANY, NewEvent, open_event_store
from eventstore.migrations import migrate
from eventstore.schema import migrations

PAYLOAD = {"account_id": "account-0001", "amount": 1250, "currency": "EUR", "note": "x" * 120}
PAYLOAD_JSON = json.dumps(PAYLOAD)
META = {"correlation_id": str(uuid.uuid4()), "actor": "bench"}
META_JSON = json.dumps(META)
STREAMS_PER_WRITER = 100
METER: ContextVar[ServerCpu | None] = ContextVar("METER", default=None)
"""Measures the database backends' CPU for every case of this run."""

BASELINE_DDL = """
CREATE TABLE baseline_events (
    id bigserial PRIMARY KEY,
    stream_id text NOT NULL,
    version bigint NOT NULL,
    type text NOT NULL,
    data jsonb NOT NULL,
    metadata jsonb NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (stream_id, version)
)"""


async def no_reset(connection: asyncpg.Connection) -> None:
    """A pool release hook that skips asyncpg's session reset (what the store does)."""


async def baseline_single(
    url: str, writers: int, seconds: float, tag: str, *, reset: bool = True
) -> Measurement:
    pool = await asyncpg.create_pool(
        url, min_size=writers, max_size=writers, reset=None if reset else no_reset
    )
    versions: dict[str, int] = {}

    async def op(worker: int, i: int) -> int:
        stream = f"base{tag}-{worker}-{i % STREAMS_PER_WRITER}"
        versions[stream] = version = versions.get(stream, 0) + 1
        await pool.execute(
            "INSERT INTO baseline_events (stream_id, version, type, data, metadata)"
            " VALUES ($1, $2, 'Deposited', $3::jsonb, $4::jsonb)",
            stream,
            version,
            PAYLOAD_JSON,
            META_JSON,
        )
        return 1

    label = "(a) raw INSERT" if reset else "(a') raw INSERT, pool without reset"
    try:
        return await run_for(f"{label}, {writers} writers", writers, seconds, op, METER.get())
    finally:
        await pool.close()


async def chronicle_single(url: str, writers: int, seconds: float, tag: str) -> Measurement:
    store = await open_event_store(url, pool_size=writers)

    async def op(worker: int, i: int) -> int:
        stream = f"chron{tag}-{worker}-{i % STREAMS_PER_WRITER}"
        await store.append(stream, [NewEvent("Deposited", PAYLOAD, META)], ANY)
        return 1

    try:
        return await run_for(
            f"(b) Chronicle append, {writers} writers", writers, seconds, op, METER.get()
        )
    finally:
        await store.close()


async def baseline_batch(url: str, writers: int, seconds: float, tag: str) -> Measurement:
    pool = await asyncpg.create_pool(url, min_size=writers, max_size=writers, reset=no_reset)

    async def op(worker: int, i: int) -> int:
        # The client sends all 100 rows, as any real batch insert must.
        await pool.execute(
            "INSERT INTO baseline_events (stream_id, version, type, data, metadata)"
            " SELECT $1, r.v, 'Deposited', r.d::jsonb, r.m::jsonb"
            " FROM unnest($2::bigint[], $3::text[], $4::text[]) AS r(v, d, m)",
            f"batchbase{tag}-{worker}-{i}",
            list(range(1, 101)),
            [PAYLOAD_JSON] * 100,
            [META_JSON] * 100,
        )
        return 100

    try:
        return await run_for(
            f"(c) raw 100-row INSERT, {writers} writers", writers, seconds, op, METER.get()
        )
    finally:
        await pool.close()


async def chronicle_batch(url: str, writers: int, seconds: float, tag: str) -> Measurement:
    store = await open_event_store(url, pool_size=writers)

    async def op(worker: int, i: int) -> int:
        events = [NewEvent("Deposited", PAYLOAD, META) for _ in range(100)]
        await store.append(f"batch{tag}-{worker}-{i}", events, ANY)
        return 100

    try:
        return await run_for(
            f"(c) Chronicle append x100, {writers} writers", writers, seconds, op, METER.get()
        )
    finally:
        await store.close()


async def eventsourcing_single(
    url: str, writers: int, seconds: float, tag: str
) -> Measurement | None:
    """The eventsourcing library's recorder from ``writers`` threads (it is synchronous)."""
    try:
        from eventsourcing.persistence import StoredEvent
        from eventsourcing.postgres import PostgresApplicationRecorder, PostgresDatastore
    except ImportError:
        return None
    parts = urlsplit(url)
    datastore = PostgresDatastore(
        parts.path.lstrip("/"),
        parts.hostname or "127.0.0.1",
        parts.port or 5432,
        parts.username or "postgres",
        parts.password or "",
        pool_size=writers,
    )
    recorder = PostgresApplicationRecorder(datastore, events_table_name=f"es_events_{tag}")
    await asyncio.to_thread(recorder.create_table)
    state = PAYLOAD_JSON.encode()
    counts = [0] * writers
    deadline = time.perf_counter() + seconds

    def loop(worker: int) -> None:
        ids = [uuid.uuid4() for _ in range(STREAMS_PER_WRITER)]
        versions = [0] * STREAMS_PER_WRITER
        while time.perf_counter() < deadline:
            k = counts[worker] % STREAMS_PER_WRITER
            versions[k] += 1
            event = StoredEvent(ids[k], versions[k], "bank:Deposited", state)
            recorder.insert_events([event])
            counts[worker] += 1

    def run_threads() -> None:
        threads = [threading.Thread(target=loop, args=(w,)) for w in range(writers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    meter = METER.get()
    before = await meter.sample() if meter else None
    cpu, start = time.process_time(), time.perf_counter()
    await asyncio.to_thread(run_threads)
    elapsed, client = time.perf_counter() - start, time.process_time() - cpu
    after = await meter.sample() if meter else None
    await asyncio.to_thread(datastore.close)
    name = f"(d) eventsourcing recorder, {writers} writers"
    total = sum(counts)
    return Measurement(name, total, total, elapsed, client, ServerCpu.used(before, after))


Case = Callable[[str, float, str], Awaitable[Measurement | None]]


def cpu_columns(m: Measurement) -> tuple[str, str, str]:
    client, server = m.cpu_us_per_item
    if server is None:
        return f"{client:.1f}", "-", "-"
    return f"{client:.1f}", f"{server:.1f}", f"{client + server:.1f}"


def cases() -> dict[str, Case]:
    """Every measured case by key; each takes (url, seconds, tag)."""

    def es(writers: int) -> Case:
        return lambda url, sec, tag: eventsourcing_single(url, writers, sec, tag)

    return {
        "a8": lambda url, sec, tag: baseline_single(url, 8, sec, tag),
        "a_nr8": lambda url, sec, tag: baseline_single(url, 8, sec, tag, reset=False),
        "b8": lambda url, sec, tag: chronicle_single(url, 8, sec, tag),
        "d8": es(8),
        "a32": lambda url, sec, tag: baseline_single(url, 32, sec, tag),
        "a_nr32": lambda url, sec, tag: baseline_single(url, 32, sec, tag, reset=False),
        "b32": lambda url, sec, tag: chronicle_single(url, 32, sec, tag),
        "d32": es(32),
        "c_raw": lambda url, sec, tag: baseline_batch(url, 8, sec, tag),
        "c_ours": lambda url, sec, tag: chronicle_batch(url, 8, sec, tag),
    }


async def main(seconds: float, rounds: int) -> None:
    """Run every case ``rounds`` times, interleaved, and keep each case's median, so a
    burst of load elsewhere on the machine hits baseline and ours alike."""
    name, url = await create_scratch_database("chronicle_bench_append")
    runs: dict[str, list[Measurement]] = {}
    try:
        await migrate(url, migrations())
        conn = await asyncpg.connect(url)
        await conn.execute(BASELINE_DDL)
        METER.set(ServerCpu(conn))
        for round_ in range(rounds):
            for key, case in cases().items():
                measured = await case(url, seconds, f"{key}r{round_}")
                if measured is not None:
                    runs.setdefault(key, []).append(measured)
        await conn.close()
    finally:
        await drop_database(name)
    summarize({key: median(found) for key, found in runs.items()})


def median(found: list[Measurement]) -> Measurement:
    return sorted(found, key=lambda m: m.items_per_second)[len(found) // 2]


def summarize(results: dict[str, Measurement]) -> None:
    rows = [
        (m.name, f"{m.items_per_second:,.0f}", f"{m.operations:,}", *cpu_columns(m))
        for m in results.values()
    ]
    print_table(
        "append throughput (events/s, median of the rounds) and CPU cost per event",
        rows,
        ("case", "events/s", "calls", "client CPU us/event", "server CPU us/event", "total"),
    )
    ratios = [
        ("(b)/(a) at 8 writers", results["b8"], results["a8"], 0.8),
        ("(b)/(a) at 32 writers", results["b32"], results["a32"], 0.8),
        ("(b)/(a') at 32 writers, same pool settings", results["b32"], results["a_nr32"], 0.8),
        ("(c) batched ours/raw", results["c_ours"], results["c_raw"], 0.7),
    ]
    if "d32" in results:
        ratios.append(("(b)/(d) at 32 writers", results["b32"], results["d32"], 5.0))
    print_table(
        "ratios against targets",
        [
            (label, f"{ours.items_per_second / base.items_per_second:.2f}", f">= {target}")
            for label, ours, base, target in ratios
        ],
        ("ratio", "measured", "target"),
    )
    extra = {
        "batched_ratio": round(
            results["c_ours"].items_per_second / results["c_raw"].items_per_second, 3
        )
    }
    if "d32" in results:
        extra["vs_eventsourcing"] = round(
            results["b32"].items_per_second / results["d32"].items_per_second, 2
        )
    report(
        "append",
        results["b32"].items_per_second,
        results["a32"].items_per_second,
        "events/s",
        **extra,
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="duration of each run")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved runs per case")
    args = parser.parse_args()
    asyncio.run(main(args.seconds, args.rounds))
