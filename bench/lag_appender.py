"""The paced appender of the live-lag benchmark (bench.projections part (b)), run as a
process of its own, as the commands process appends in a deployed system.

It appends one deposit every 1/rate seconds and prints, as one JSON line at the end, an
:class:`Appended`: for every append its log position, the ``time.perf_counter()`` at
its start and how long the call took. The benchmark process pairs those start times
with the commit times its projector stamps on the same clock.

Usage: python -m bench.lag_appender '{"url": ..., "rate": 500, "seconds": 20,
"accounts": 2000}'; it prints "ready" once its connections are open, then appends.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Coroutine
from dataclasses import asdict, dataclass, field
from typing import Any, TypeVar

from chronicle.runtime import keep_startup_objects_out_of_collections, new_event_loop
from eventstore import EventStore, NewEvent, open_event_store

T = TypeVar("T")
META = {"schema_version": 1}
OPENING_APPENDS = 4
"""Appends made at once before the schedule starts, so that it finds connections open
(the pool opens them on demand)."""


@dataclass
class Appended:
    """What the appender process reports: one entry per append, in completion order."""

    positions: list[int] = field(default_factory=list)
    """The log position of each appended event."""
    started: list[float] = field(default_factory=list)
    """``time.perf_counter()`` at the start of each append call."""
    took: list[float] = field(default_factory=list)
    """Seconds each append call took."""
    cpu: float = 0.0
    """CPU seconds of the appender process while appending (start-up left out)."""


def _deposit(i: int, accounts: int) -> tuple[str, list[NewEvent]]:
    """The ``i``-th deposit: stream id and events, spread over ``accounts`` accounts."""
    account = f"b{i % accounts}"
    event = NewEvent("MoneyDeposited", {"account_id": account, "amount": 1}, META)
    return f"account-{account}", [event]


async def paced_appends(store: EventStore, rate: float, seconds: float, accounts: int) -> Appended:
    """One deposit every 1/rate seconds on a fixed schedule (late calls do not shift it)."""
    total = int(rate * seconds)
    appended = Appended()
    start = time.perf_counter()
    pending: set[asyncio.Task[None]] = set()

    async def one(i: int) -> None:
        began = time.perf_counter()
        result = await store.append(*_deposit(i, accounts))
        appended.took.append(time.perf_counter() - began)
        appended.started.append(began)
        appended.positions.append(result.position)

    for i in range(total):
        delay = start + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        task = asyncio.create_task(one(i))
        pending.add(task)
        task.add_done_callback(pending.discard)
    await asyncio.gather(*pending)
    return appended


async def _append_for(spec: dict[str, Any]) -> Appended:
    """Open the store, open connections, say "ready" on stdout, append on schedule."""
    store = await open_event_store(spec["url"])
    try:
        accounts = spec["accounts"]
        await asyncio.gather(
            *(store.append(*_deposit(i, accounts)) for i in range(OPENING_APPENDS))
        )
        print("ready", flush=True)
        cpu = time.process_time()
        appended = await paced_appends(store, spec["rate"], spec["seconds"], accounts)
        appended.cpu = time.process_time() - cpu
        return appended
    finally:
        await store.close()


def run_on_uvloop(main: Coroutine[Any, Any, T]) -> T:
    """Run ``main`` as every Chronicle process runs: on uvloop
    (:func:`chronicle.runtime.new_event_loop`), start-up objects out of the collector."""

    async def runner() -> T:
        keep_startup_objects_out_of_collections()
        return await main

    with asyncio.Runner(loop_factory=new_event_loop) as loop_runner:
        return loop_runner.run(runner())


if __name__ == "__main__":
    print(json.dumps(asdict(run_on_uvloop(_append_for(json.loads(sys.argv[1]))))))
