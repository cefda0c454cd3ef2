"""Read-side benchmark on PostgreSQL (and RabbitMQ for the live part), one run.

(a) rebuild: ``Replay`` of the account-summary and account-transactions read models
    (both at once, as two `chronicle replay` processes would run) from a log of
    200,000 events, against a raw batched INSERT of 200,000 statement-shaped rows into
    a plain table of the same database. Figure: log events (rows) per second.
    Target: ours >= 0.25x raw.
(b) live lag: 500 events/s appended for ``--seconds`` by an appender process of its
    own (``bench.lag_appender``, as the commands process appends); the relay
    (`chronicle serve relay`) publishes to RabbitMQ; the projector, in this process,
    applies. Lag = from the start of the append call (appender process) to the commit
    of the read-model transaction holding the event (account summary and
    transactions; this process). Target: p99 <= 100 ms.
(c) the same with the in-process bus (``memory://``): the relay then runs in this
    process, polling the log the appender process writes to.
(d) the live apply step alone (``bench.apply_path``): batches of 20 deposits committed
    through ``Applier.commit`` to both read models, against asyncpg doing the same
    writes with prepared statements. Figure: CPU of this process per event.

Every process runs as Chronicle's do: on uvloop (`chronicle.runtime.new_event_loop`).
Wall-clock figures move with whatever else runs on the machine; CPU time per event
(of the replay processes; of the appender, this process and the relay during the lag
run) barely does, so it is reported too, to compare runs made under different load.

A scratch database (and a broker prefix) is created and dropped by the run.
Usage: python -m bench.projections [--events 200000] [--seconds 20] [--rate 500]
       [--apply-batches 1000] [--apply-only] [--lag-only]

``--lag-only`` runs (b) alone, on a log of ``--events`` (20,000 is plenty: the lag
run starts the relay at the head), and prints the lag figures with the CPU per event
of each process; it ends with the same kind of JSON line, the memory-bus lag (c) as
the baseline.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import re
import resource
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import aio_pika
import asyncpg

from bench.apply_path import ApplyRun, apply_path
from bench.common import create_scratch_database, drop_database, print_table, report
from bench.lag_appender import Appended, run_on_uvloop
from chronicle.migrations import all_migrations
from eventstore import EventStore, NewEvent, RecordedEvent, open_event_store
from eventstore.bus import Topology, open_bus
from eventstore.migrations import migrate
from eventstore.relay import Relay, RelayConfig, SoleLeadership
from projections.bank import AccountSummaryProjection, AccountTransactionsProjection
from projections.db import open_engine
from projections.parking import MemoryParkingLot
from projections.projector import Projector, queue_specs
from projections.runner import RunnerConfig

AMQP_URL = os.environ.get("CHRONICLE_BENCH_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
ACCOUNTS = 2000
PER_APPEND = 100
WRITERS = 8
BATCH = 5000
META = {"schema_version": 1}
V2 = {"schema_version": 2}

RAW_DDL = """
CREATE TABLE raw_lines (
    account_id text NOT NULL, version int NOT NULL, position bigint NOT NULL,
    kind text NOT NULL, amount bigint NOT NULL, balance_after bigint NOT NULL,
    transfer_id text, recorded_at text NOT NULL, PRIMARY KEY (account_id, version)
)"""


def _money(account: str, rng: random.Random, count: int) -> list[NewEvent]:
    """Deposits with some small withdrawals; the balance never goes below zero."""
    events = []
    for i in range(count):
        if i % 5 == 4:
            events.append(NewEvent("MoneyWithdrawn", {"account_id": account, "amount": 10}, META))
        else:
            amount = rng.randrange(50, 500)
            events.append(
                NewEvent("MoneyDeposited", {"account_id": account, "amount": amount}, META)
            )
    return events


async def populate(store: EventStore, total: int) -> None:
    """``total`` events: ACCOUNTS openings, then money movements in appends of 100."""
    rng = random.Random(1)
    for start in range(0, ACCOUNTS, 500):
        await asyncio.gather(
            *(
                store.append(
                    f"account-b{i}",
                    [NewEvent("AccountOpened", {"account_id": f"b{i}", "owner": f"O{i}"}, V2)],
                )
                for i in range(start, min(start + 500, ACCOUNTS))
            )
        )
    jobs = [(f"b{i % ACCOUNTS}", PER_APPEND) for i in range((total - ACCOUNTS) // PER_APPEND)]
    left = total - ACCOUNTS - len(jobs) * PER_APPEND
    if left:
        jobs.append(("b0", left))

    async def writer(worker: int) -> None:
        for account, count in jobs[worker::WRITERS]:
            await store.append(f"account-{account}", _money(account, rng, count))

    await asyncio.gather(*(writer(w) for w in range(WRITERS)))


@dataclass(frozen=True)
class Rebuild:
    """Two `chronicle replay` processes run at once, as an operator would run them."""

    seconds: float
    """From their launch until both have exited: process start-up included."""
    replay_seconds: float
    """The longer replay's own time, from preparing its shadow tables to the swap: the
    like-for-like figure, since the baseline's time too leaves out its setup (connection,
    table, rows built in memory)."""
    cpu: float
    """CPU seconds of both processes, start-up included."""


_REPLAY_TIME = re.compile(r" events in (\d+(?:\.\d+)?)s ")


async def rebuild(url: str) -> Rebuild:
    """Rebuild both read models from position 0, swaps included (see :class:`Rebuild`)."""
    env = {
        **os.environ,
        "CHRONICLE_EVENTSTORE_URL": url,
        "CHRONICLE_LOG_LEVEL": "WARNING",
        "COLUMNS": "100",
    }
    command = [str(Path(sys.executable).parent / "chronicle"), "replay"]
    cpu = _children_cpu()
    started = time.perf_counter()
    processes = [
        await asyncio.create_subprocess_exec(
            *command, name, "--batch-size", str(BATCH), env=env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
        )
        for name in ("account_summary", "account_transactions")
    ]  # fmt: skip
    outputs = [await process.communicate() for process in processes]
    seconds = time.perf_counter() - started
    cpu = _children_cpu() - cpu
    own = []
    for process, (out, _) in zip(processes, outputs, strict=True):
        print(f"  {out.decode().strip()}")
        if process.returncode != 0:
            raise RuntimeError(f"chronicle replay failed with {process.returncode}")
        found = _REPLAY_TIME.search(out.decode())
        if found is None:
            raise RuntimeError(f"chronicle replay printed no time: {out.decode()!r}")
        own.append(float(found.group(1)))
    return Rebuild(seconds, max(own), cpu)


def _children_cpu() -> float:
    """CPU seconds of the child processes waited for so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _process_cpu(pid: int) -> float | None:
    """CPU seconds of a running process on this machine (None when unreadable)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def raw_insert(url: str, rows: int) -> float:
    """Seconds to INSERT ``rows`` statement-shaped rows in batches of BATCH."""
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(RAW_DDL)
        data = [
            (f"b{i % ACCOUNTS}", i // ACCOUNTS + 1, i + 1, "deposit", 100,
             100 * (i // ACCOUNTS + 1), None, "2026-01-01T00:00:00.000000+00:00")
            for i in range(rows)
        ]  # fmt: skip
        started = time.perf_counter()
        for start in range(0, rows, BATCH):
            async with conn.transaction():
                await conn.executemany(
                    "INSERT INTO raw_lines VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                    data[start : start + BATCH],
                )
        return time.perf_counter() - started
    finally:
        await conn.close()


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


@dataclass
class LiveRun:
    lags: list[float] = field(default_factory=list)
    """Seconds from the start of each append call to the commit holding its event."""
    appends: list[float] = field(default_factory=list)
    """Seconds each append call took."""
    cpu: float = 0.0
    """CPU seconds of this process (consumers, projector; and the relay on the memory
    bus) from the first append until the read models hold the last one."""
    relay_cpu: float | None = None
    """CPU seconds of the relay process meanwhile (None: in this process, or unknown)."""
    appender_cpu: float = 0.0
    """CPU seconds of the appender process while appending."""


async def live_lag(url: str, rate: float, seconds: float, broker: str = AMQP_URL) -> LiveRun:
    """Lags of every event appended at ``rate`` for ``seconds`` by an appender process,
    through ``broker`` (RabbitMQ; or ``memory://`` with the relay in this process, to
    tell the projector's share from the broker path's), how long each append call took,
    and the CPU each process used. The projector runs in this process, which stamps
    each read-model commit."""
    prefix = f"bench_proj_{random.randrange(1 << 30):x}"
    store = await open_event_store(url)
    topology = Topology(prefix=prefix)
    measured = [AccountSummaryProjection(), AccountTransactionsProjection()]
    queues = queue_specs(measured)
    bus = open_bus(broker, topology, queues=queues)
    engine = open_engine(url, writer=True)
    commits: list[tuple[int, float]] = []

    def observe(name: str, records: Sequence[RecordedEvent]) -> None:
        now = time.perf_counter()
        commits.extend((r.position, now) for r in records)

    projector = Projector(
        measured,
        engine=engine,
        store=store,
        bus=bus,
        parking=MemoryParkingLot(),
        config=RunnerConfig(),
        observer=observe,
    )
    stop = asyncio.Event()
    relay: subprocess.Popen[bytes] | None = None
    try:
        # The history was published long ago in a running system: the relay starts at
        # the head, so the lag measured is that of live traffic, not of a backlog.
        await store.save_checkpoint(prefix, await store.head_position())
        await bus.declare(queues)
        tasks = [asyncio.create_task(projector.run(stop))]
        if broker.startswith("memory"):
            config = RelayConfig(name=prefix, poll_max_delay=0.005)
            tasks.append(asyncio.create_task(Relay(store, bus, SoleLeadership(), config).run(stop)))
        else:
            relay = _relay_process(url, prefix)
        await _warm_up(store, projector)
        run = await _measure(url, rate, seconds, projector, relay, commits)
        stop.set()
        await asyncio.gather(*tasks)
    finally:
        if relay is not None:
            relay.send_signal(signal.SIGTERM)
            relay.wait(30)
        await bus.close()
        await engine.dispose()
        await store.close()
        if not broker.startswith("memory"):
            await _delete_topology(topology)
    return run


async def _measure(
    url: str,
    rate: float,
    seconds: float,
    projector: Projector,
    relay: subprocess.Popen[bytes] | None,
    commits: list[tuple[int, float]],
) -> LiveRun:
    """Run the appender process and pair its appends with the ``commits`` the observer
    stamps. CPU of this process and the relay is counted from the first append until
    both read models hold the last one."""
    spec = json.dumps({"url": url, "rate": rate, "seconds": seconds, "accounts": ACCOUNTS})
    appender = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.lag_appender", spec,
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert appender.stdout is not None
    if (await appender.stdout.readline()).strip() != b"ready":
        raise RuntimeError("the appender process did not start")
    relay_before = None if relay is None else _process_cpu(relay.pid)
    cpu = time.process_time()
    out, _ = await appender.communicate()
    if appender.returncode != 0:
        raise RuntimeError(f"the appender process failed with {appender.returncode}")
    appended = Appended(**json.loads(out.decode().strip().splitlines()[-1]))
    await _caught_up(projector, max(appended.positions))
    run = LiveRun(appends=appended.took, appender_cpu=appended.cpu)
    run.cpu = time.process_time() - cpu
    relay_after = None if relay is None else _process_cpu(relay.pid)
    if relay_before is not None and relay_after is not None:
        run.relay_cpu = relay_after - relay_before
    run.lags = _lags(commits, appended)
    return run


async def _caught_up(projector: Projector, position: int) -> None:
    """Return once every projection holds ``position`` (or after 30 s: the events still
    missing then are missing from the lags)."""
    deadline = time.monotonic() + 30
    while any(r.checkpoint < position for r in projector.runners):
        if time.monotonic() > deadline:
            return
        await asyncio.sleep(0.05)


def _lags(commits: Sequence[tuple[int, float]], appended: Appended) -> list[float]:
    """Seconds from the start of each append to each commit holding its event (one per
    read model). The stamps come from two processes; both read ``time.perf_counter()``,
    which on Linux is CLOCK_MONOTONIC: one clock for every process of the machine."""
    sent = dict(zip(appended.positions, appended.started, strict=True))
    return [at - sent[position] for position, at in commits if position in sent]


def _relay_process(url: str, prefix: str) -> subprocess.Popen[bytes]:
    """The relay in a process of its own, as deployed: it learns of appends by polling
    the log (every 5 ms at most when idle)."""
    return subprocess.Popen(
        [str(Path(sys.executable).parent / "chronicle"), "serve", "relay"],
        env={
            **os.environ,
            "CHRONICLE_EVENTSTORE_URL": url,
            "CHRONICLE_BROKER_URL": AMQP_URL,
            "CHRONICLE_BROKER_PREFIX": prefix,
            "CHRONICLE_RELAY_NAME": prefix,
            "CHRONICLE_RELAY_POLL_MAX_DELAY": "0.005",
            "CHRONICLE_RELAY_MAX_IN_FLIGHT": os.environ.get("CHRONICLE_RELAY_MAX_IN_FLIGHT", "4"),
            "CHRONICLE_HTTP_PORT": "0",
            "CHRONICLE_LOG_LEVEL": "WARNING",
        },
    )


async def _warm_up(store: EventStore, projector: Projector) -> None:
    """Start measuring once an event has gone all the way through (relay started,
    connections open, projector live)."""
    for _ in range(20):
        result = await store.append(
            "account-b0", [NewEvent("MoneyDeposited", {"account_id": "b0", "amount": 1}, META)]
        )
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            if all(r.checkpoint >= result.position for r in projector.runners):
                break
            await asyncio.sleep(0.01)
    if any(r.status.state != "live" for r in projector.runners):
        raise RuntimeError("the projector is not live")


async def _delete_topology(topology: Topology) -> None:
    connection = await aio_pika.connect(AMQP_URL)
    async with connection:
        channel = await connection.channel()
        # The measured projector's queue; the relay declares none (see chronicle/topology.py).
        for spec in queue_specs([AccountSummaryProjection(), AccountTransactionsProjection()]):
            with contextlib.suppress(aio_pika.exceptions.AMQPError):
                await channel.queue_delete(topology.queue_name(spec.name))
        with contextlib.suppress(aio_pika.exceptions.AMQPError):
            await channel.queue_delete(topology.broadcast)
        with contextlib.suppress(aio_pika.exceptions.AMQPError):
            await channel.exchange_delete(topology.exchange)


async def measure_apply(batches: int) -> ApplyRun:
    """(d) on a scratch database of its own, so the earlier parts leave nothing in it."""
    name, url = await create_scratch_database("bench_projections_apply")
    try:
        await migrate(url, all_migrations())
        return await apply_path(url, batches)
    finally:
        await drop_database(name)


def _apply_rows(run: ApplyRun) -> list[tuple[str, ...]]:
    return [
        ("(d) apply step, raw asyncpg", f"{run.events:,} events", f"{run.raw_seconds:.2f}s",
         f"{run.raw_rate:,.0f}"),
        ("(d) apply step, Applier.commit", "batches of 20, 2 models", f"{run.ours_seconds:.2f}s",
         f"{run.ours_rate:,.0f}"),
        ("    CPU per event, raw", "", "", f"{run.raw_us:.0f} us"),
        ("    CPU per event, ours", "", "", f"{run.ours_us:.0f} us"),
        ("    CPU ours/raw", "", "", f"{run.ours_us / run.raw_us:.2f}"),
    ]  # fmt: skip


async def apply_only(batches: int) -> None:
    run = await measure_apply(batches)
    print_table("live apply step (d)", _apply_rows(run), ("case", "size", "time", "events/s"))


@contextlib.asynccontextmanager
async def populated_log(name: str, events: int) -> AsyncIterator[str]:
    """A scratch database holding a bank log of ``events`` events; its URL. Dropped on
    exit."""
    name, url = await create_scratch_database(name)
    try:
        await migrate(url, all_migrations())
        store = await open_event_store(url)
        try:
            started = time.perf_counter()
            await populate(store, events)
            print(f"log of {events:,} events written in {time.perf_counter() - started:.1f}s")
        finally:
            await store.close()
        await settle(url)
        yield url
    finally:
        await drop_database(name)


async def settle(url: str) -> None:
    """Let the database finish the work that writing left behind before a measured
    phase: the autovacuum of a freshly written log, and a checkpoint, would otherwise
    land inside whichever phase runs next (a log being rebuilt has long been vacuumed)."""
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("VACUUM ANALYZE")
        await conn.execute("CHECKPOINT")
    finally:
        await conn.close()


async def lag_only(events: int, rate: float, seconds: float) -> None:
    async with populated_log("bench_projections_lag", events) as url:
        amqp = await live_lag(url, rate, seconds)
        memory = await live_lag(url, rate, seconds, broker="memory://")
    sent = rate * seconds
    rows = []
    for label, run in (("(b) RabbitMQ", amqp), ("(c) in-process bus", memory)):
        p50, p99 = percentile(run.lags, 0.5) * 1000, percentile(run.lags, 0.99) * 1000
        relay = "in this process" if run.relay_cpu is None else f"{_us(run.relay_cpu, sent)} us"
        rows.append((label, f"{p50:.1f} ms", f"{p99:.1f} ms", f"{_us(run.cpu, sent)} us", relay))
    print_table(
        f"live lag at {rate:.0f} events/s for {seconds:.0f}s",
        rows,
        ("path", "p50", "p99", "CPU/event, projector", "CPU/event, relay"),
    )
    p99 = percentile(amqp.lags, 0.99) * 1000
    m99 = percentile(memory.lags, 0.99) * 1000
    report(
        "projections_lag",
        round(p99, 1),
        round(m99, 1),
        "ms p99",
        lag_p50_ms=round(percentile(amqp.lags, 0.5) * 1000, 1),
        memory_bus_lag_p50_ms=round(percentile(memory.lags, 0.5) * 1000, 1),
        lag_cpu_us_per_event=_us(amqp.cpu, sent),
        relay_cpu_us_per_event=_us(amqp.relay_cpu, sent),
        appender_cpu_us_per_event=_us(amqp.appender_cpu, sent),
    )


async def main(events: int, rate: float, seconds: float, apply_batches: int) -> None:
    async with populated_log("bench_projections", events) as url:
        rebuilt = await rebuild(url)
        await settle(url)  # the same start for the baseline
        raw_cpu = time.process_time()
        raw_seconds = await raw_insert(url, events)
        raw_cpu = time.process_time() - raw_cpu
        amqp = await live_lag(url, rate, seconds)
        memory = await live_lag(url, rate, seconds, broker="memory://")
    applied = await measure_apply(apply_batches)
    raw_run = (raw_seconds, raw_cpu)
    _print_and_report(events, rate, seconds, rebuilt, raw_run, amqp, memory, applied)


def _us(cpu: float | None, events: float) -> int | None:
    """CPU microseconds per event (None when unknown)."""
    return None if cpu is None else round(cpu / events * 1e6)


def _print_and_report(
    events: int,
    rate: float,
    seconds: float,
    rebuilt: Rebuild,
    raw_run: tuple[float, float],
    amqp: LiveRun,
    memory: LiveRun,
    applied: ApplyRun,
) -> None:
    """The table for a reader, then the one JSON line of the run."""
    raw_seconds, raw_cpu = raw_run
    lags, appends, memory_lags = amqp.lags, amqp.appends, memory.lags
    ours, raw = events / rebuilt.replay_seconds, events / raw_seconds
    with_startup = events / rebuilt.seconds
    sent = rate * seconds
    relay_us = _us(amqp.relay_cpu, sent)
    pipeline = None if amqp.relay_cpu is None else amqp.cpu + amqp.appender_cpu + amqp.relay_cpu
    p50, p99 = percentile(lags, 0.5) * 1000, percentile(lags, 0.99) * 1000
    m50, m99 = percentile(memory_lags, 0.5) * 1000, percentile(memory_lags, 0.99) * 1000
    a50, a99 = percentile(appends, 0.5) * 1000, percentile(appends, 0.99) * 1000
    print_table(
        "rebuild (a) and live lag (b), one run",
        [
            ("(a) raw batched INSERT", f"{events:,} rows", f"{raw_seconds:.2f}s", f"{raw:,.0f}"),
            ("(a) rebuild 2 models", f"{events:,} events", f"{rebuilt.replay_seconds:.2f}s",
             f"{ours:,.0f}"),
            ("(a) ratio ours/raw", "target >= 0.25", "", f"{ours / raw:.3f}"),
            ("    the same, start-up included", f"{events:,} events", f"{rebuilt.seconds:.2f}s",
             f"{with_startup:,.0f}"),
            ("    ratio with start-up", "", "", f"{with_startup / raw:.3f}"),
            ("    CPU per event, both replays", "start-up included", "",
             f"{rebuilt.cpu / events * 1e6:.0f} us"),
            ("    CPU per row, raw INSERT client", "", "", f"{raw_cpu / events * 1e6:.0f} us"),
            (f"(b) lag p50 at {rate:.0f}/s", f"{len(lags):,} samples", "", f"{p50:.1f} ms"),
            (f"(b) lag p99 at {rate:.0f}/s", "target <= 100 ms", "", f"{p99:.1f} ms"),
            ("(b) lag mean", "", "", f"{statistics.fmean(lags) * 1000:.1f} ms"),
            ("    of which the append call, p50", "", "", f"{a50:.1f} ms"),
            ("    of which the append call, p99", "", "", f"{a99:.1f} ms"),
            ("    CPU per event, appender process", "", "", f"{_us(amqp.appender_cpu, sent)} us"),
            ("    CPU per event, projector process", "this process", "",
             f"{_us(amqp.cpu, sent)} us"),
            ("    CPU per event, relay process", "", "", f"{relay_us} us"),
            ("(c) same, in-process bus, p50", "projector's share", "", f"{m50:.1f} ms"),
            ("(c) same, in-process bus, p99", "", "", f"{m99:.1f} ms"),
            ("    CPU per event, appender process", "", "",
             f"{_us(memory.appender_cpu, sent)} us"),
            ("    CPU per event, this process", "relay included", "",
             f"{_us(memory.cpu, sent)} us"),
            *_apply_rows(applied),
        ],
        ("case", "size", "time", "rows/s or lag"),
    )  # fmt: skip
    report(
        "projections",
        ours,
        raw,
        "rows/s",
        lag_p50_ms=round(p50, 1),
        lag_p99_ms=round(p99, 1),
        lag_rate=rate,
        lag_samples=len(lags),
        memory_bus_lag_p50_ms=round(m50, 1),
        memory_bus_lag_p99_ms=round(m99, 1),
        rebuild_seconds_with_startup=round(rebuilt.seconds, 2),
        ratio_with_startup=round(with_startup / raw, 3),
        rebuild_cpu_us_per_event=round(rebuilt.cpu / events * 1e6),
        lag_cpu_us_per_event=_us(amqp.cpu, sent),
        relay_cpu_us_per_event=relay_us,
        appender_cpu_us_per_event=_us(amqp.appender_cpu, sent),
        pipeline_cpu_us_per_event=_us(pipeline, sent),
        append_p50_ms=round(a50, 1),
        append_p99_ms=round(a99, 1),
        memory_bus_lag_samples=len(memory_lags),
        memory_bus_cpu_us_per_event=_us(memory.cpu, sent),
        memory_bus_appender_cpu_us_per_event=_us(memory.appender_cpu, sent),
        apply_events=applied.events,
        apply_cpu_us_per_event=round(applied.ours_us),
        apply_raw_cpu_us_per_event=round(applied.raw_us),
        apply_cpu_ratio=round(applied.ours_us / applied.raw_us, 2),
        apply_events_per_s=round(applied.ours_rate),
        apply_raw_events_per_s=round(applied.raw_rate),
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000, help="log size for the rebuild")
    parser.add_argument("--rate", type=float, default=500.0, help="events/s for the lag run")
    parser.add_argument("--seconds", type=float, default=20.0, help="duration of the lag run")
    parser.add_argument(
        "--apply-batches", type=int, default=1000, help="batches of 20 for the apply step (d)"
    )
    parser.add_argument("--apply-only", action="store_true", help="run (d) alone")
    parser.add_argument("--lag-only", action="store_true", help="run (b) and (c) alone")
    args = parser.parse_args()
    if args.apply_only:
        run_on_uvloop(apply_only(args.apply_batches))
    elif args.lag_only:
        run_on_uvloop(lag_only(args.events, args.rate, args.seconds))
    else:
        run_on_uvloop(main(args.events, args.rate, args.seconds, args.apply_batches))
