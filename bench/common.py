"""Shared pieces of the benchmarks: scratch databases, timing loops, the report format."""

from __future__ import annotations

import asyncio
import json
import os
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import asyncpg

ADMIN_URL = os.environ.get(
    "CHRONICLE_BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)


def database_url(name: str) -> str:
    parts = urlsplit(ADMIN_URL)
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", "", ""))


async def create_scratch_database(prefix: str) -> tuple[str, str]:
    """Create an empty database; return its name and URL."""
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(ADMIN_URL)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return name, database_url(name)


async def drop_database(name: str) -> None:
    conn = await asyncpg.connect(ADMIN_URL)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@dataclass(frozen=True)
class Measurement:
    name: str
    operations: int
    items: int
    seconds: float
    client_cpu: float = 0.0
    """CPU seconds of this (client) process during the run."""
    server_cpu: float | None = None
    """CPU seconds of the PostgreSQL backends serving the run (None when unknown)."""

    @property
    def items_per_second(self) -> float:
        return self.items / self.seconds

    @property
    def cpu_us_per_item(self) -> tuple[float, float | None]:
        """(client, server) CPU microseconds per item: unlike throughput, barely moved
        by other load on the machine."""
        server = None if self.server_cpu is None else 1e6 * self.server_cpu / self.items
        return 1e6 * self.client_cpu / self.items, server


class ServerCpu:
    """CPU time of the PostgreSQL backends connected to one database, read from /proc
    (so only when the bench runs on the database's machine)."""

    _TICKS = os.sysconf("SC_CLK_TCK")

    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn

    async def sample(self) -> dict[int, float] | None:
        pids = await self._conn.fetch(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
            " AND pid <> pg_backend_pid()"
        )
        try:
            return {row["pid"]: self._cpu(row["pid"]) for row in pids}
        except OSError:
            return None

    @classmethod
    def _cpu(cls, pid: int) -> float:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / cls._TICKS

    @staticmethod
    def used(before: dict[int, float] | None, after: dict[int, float] | None) -> float | None:
        if before is None or after is None:
            return None
        return sum(cpu - before.get(pid, 0.0) for pid, cpu in after.items())


async def run_for(
    name: str,
    workers: int,
    seconds: float,
    operation: Callable[[int, int], Awaitable[int]],
    server: ServerCpu | None = None,
) -> Measurement:
    """Run ``operation(worker, i)`` in ``workers`` concurrent loops for ``seconds``;
    each call returns how many items it handled. With ``server``, the CPU time of the
    database backends is measured too."""
    deadline = time.perf_counter() + seconds
    counts = [0] * workers
    ops = [0] * workers

    async def loop(worker: int) -> None:
        i = 0
        while time.perf_counter() < deadline:
            counts[worker] += await operation(worker, i)
            ops[worker] += 1
            i += 1

    before = await server.sample() if server else None
    cpu = time.process_time()
    start = time.perf_counter()
    await asyncio.gather(*(loop(w) for w in range(workers)))
    elapsed = time.perf_counter() - start
    client = time.process_time() - cpu
    after = await server.sample() if server else None
    used = ServerCpu.used(before, after)
    return Measurement(name, sum(ops), sum(counts), elapsed, client, used)


def print_table(title: str, rows: list[tuple[str, ...]], header: tuple[str, ...]) -> None:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    print(f"\n{title}")
    print("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for row in rows:
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)))


def report(bench: str, ours: float, baseline: float, unit: str, **extra: object) -> None:
    """The one JSON line every benchmark ends with."""
    line = {
        "bench": bench,
        "ours": round(ours, 2),
        "baseline": round(baseline, 2),
        "ratio": round(ours / baseline, 3) if baseline else None,
        "unit": unit,
        **extra,
    }
    print(json.dumps(line))
