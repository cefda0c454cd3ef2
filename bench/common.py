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

    @property
    def items_per_second(self) -> float:
        return self.items / self.seconds


async def run_for(
    name: str,
    workers: int,
    seconds: float,
    operation: Callable[[int, int], Awaitable[int]],
) -> Measurement:
    """Run ``operation(worker, i)`` in ``workers`` concurrent loops for ``seconds``;
    each call returns how many items it handled."""
    deadline = time.perf_counter() + seconds
    counts = [0] * workers
    ops = [0] * workers

    async def loop(worker: int) -> None:
        i = 0
        while time.perf_counter() < deadline:
            counts[worker] += await operation(worker, i)
            ops[worker] += 1
            i += 1

    start = time.perf_counter()
    await asyncio.gather(*(loop(w) for w in range(workers)))
    return Measurement(name, sum(ops), sum(counts), time.perf_counter() - start)


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
