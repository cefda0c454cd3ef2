"""`chronicle load`: a load generator for the whole pipeline.

It opens a few accounts, subscribes N WebSocket clients to the deposits, then posts
deposits at a steady rate. End-to-end latency is the time from sending a POST to a
client receiving the event it produced (matched by position, so an event arriving
before its HTTP response is still counted right). It prints throughput and latency
percentiles; the exit status is 1 when a client missed an event.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

import httpx
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table
from websockets.asyncio.client import ClientConnection, connect

DEPOSITS = {"categories": ["account"], "types": ["MoneyDeposited"]}


@dataclass(frozen=True, slots=True)
class LoadPlan:
    rate: float
    duration: float
    clients: int
    accounts: int
    commands_url: str
    bridge_url: str
    token: str | None = None

    @property
    def total(self) -> int:
        return max(1, round(self.rate * self.duration))


@dataclass
class LoadResult:
    """What a run measured; latencies in seconds."""

    sent: int = 0
    failed: int = 0
    elapsed: float = 0.0
    sent_at: dict[int, float] = field(default_factory=dict)
    received_at: list[dict[int, float]] = field(default_factory=list)
    commit_lags: list[float] = field(default_factory=list)
    """Seconds from the event's commit (its ``recorded_at``) to its receipt: the
    relay, broker and bridge share of the latency, without the command API's."""

    def latencies(self) -> list[float]:
        found = [
            seen[position] - sent
            for position, sent in self.sent_at.items()
            for seen in self.received_at
            if position in seen
        ]
        return sorted(found)

    def missing(self) -> int:
        return sum(1 for seen in self.received_at for p in self.sent_at if p not in seen)


def percentile(ordered: Sequence[float], fraction: float) -> float:
    """The nearest-rank percentile of already sorted values (0.0 when empty)."""
    if not ordered:
        return 0.0
    rank = min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))
    return ordered[rank]


class Listener:
    """One WebSocket client recording when each event position arrived."""

    def __init__(self, url: str, token: str | None) -> None:
        self._url = url
        self._token = token
        self.seen: dict[int, float] = {}
        self.commit_lags: list[float] = []
        self._ws: ClientConnection | None = None
        self._task: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()

    async def start(self) -> None:
        headers = {"Authorization": f"Bearer {self._token}"} if self._token else None
        self._ws = await connect(
            self._url, additional_headers=headers, compression=None, max_queue=None
        )
        await self._ws.send(json.dumps({"op": "subscribe", "id": "load", "filter": DEPOSITS}))
        reply = json.loads(await self._ws.recv())
        if reply.get("op") != "subscribed":
            raise RuntimeError(f"subscribe refused: {reply}")
        self._task = asyncio.create_task(self._receive(self._ws))

    async def _receive(self, ws: ClientConnection) -> None:
        with contextlib.suppress(Exception):
            async for message in ws:
                now = time.perf_counter()
                frame = json.loads(message)
                if frame.get("op") == "event":
                    self.seen.setdefault(frame["position"], now)
                    recorded = datetime.fromisoformat(frame["recorded_at"]).timestamp()
                    self.commit_lags.append(time.time() - recorded)
                    self._changed.set()

    async def wait_for(self, positions: set[int]) -> None:
        """Return once every one of ``positions`` arrived."""
        while not positions <= self.seen.keys():
            self._changed.clear()
            await self._changed.wait()

    async def stop(self) -> None:
        if self._ws is not None:
            await self._ws.close()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


async def open_accounts(http: httpx.AsyncClient, count: int) -> list[str]:
    ids = []
    for _ in range(count):
        account_id = f"load-{uuid.uuid4().hex[:10]}"
        reply = await http.post("/v1/accounts", json={"account_id": account_id, "owner": "load"})
        reply.raise_for_status()
        ids.append(account_id)
    return ids


async def post_deposits(
    http: httpx.AsyncClient,
    plan: LoadPlan,
    accounts: Sequence[str],
    result: LoadResult,
    progress: Progress | None = None,
) -> None:
    """POST ``plan.total`` deposits at ``plan.rate`` per second (open loop)."""
    task_id = progress.add_task("posting", total=plan.total) if progress else None
    start = time.perf_counter()

    async def one(index: int) -> None:
        sent = time.perf_counter()
        account = accounts[index % len(accounts)]
        try:
            reply = await http.post(f"/v1/accounts/{account}/deposits", json={"amount": 1})
            reply.raise_for_status()
            result.sent_at[reply.json()["position"]] = sent
            result.sent += 1
        except httpx.HTTPError:
            result.failed += 1
        if progress is not None and task_id is not None:
            progress.advance(task_id)

    async with asyncio.TaskGroup() as group:
        for index in range(plan.total):
            delay = start + index / plan.rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            group.create_task(one(index))
    result.elapsed = time.perf_counter() - start


async def wait_delivered(result: LoadResult, listeners: Sequence[Listener], seconds: float) -> None:
    """Return once every client saw every posted position, or after ``seconds``."""
    wanted = set(result.sent_at)
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            for listener in listeners:
                await listener.wait_for(wanted)


async def measure(plan: LoadPlan, progress: Progress | None = None) -> LoadResult:
    """Run ``plan`` against running services and return the measurements."""
    headers = {"Authorization": f"Bearer {plan.token}"} if plan.token else {}
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    result = LoadResult()
    async with httpx.AsyncClient(
        base_url=plan.commands_url, headers=headers, limits=limits, timeout=10.0
    ) as http:
        accounts = await open_accounts(http, plan.accounts)
        listeners = [Listener(plan.bridge_url, plan.token) for _ in range(plan.clients)]
        await asyncio.gather(*(listener.start() for listener in listeners))
        try:
            await post_deposits(http, plan, accounts, result, progress)
            await wait_delivered(result, listeners, 10.0)
        finally:
            await asyncio.gather(*(listener.stop() for listener in listeners))
    result.received_at = [listener.seen for listener in listeners]
    result.commit_lags = sorted(lag for listener in listeners for lag in listener.commit_lags)
    return result


def report(plan: LoadPlan, result: LoadResult, console: Console) -> None:
    ordered = result.latencies()
    table = Table(title="chronicle load")
    table.add_column("measure")
    table.add_column("value", justify="right")
    rows = [
        ("commands posted", f"{result.sent} ok, {result.failed} failed"),
        ("throughput", f"{result.sent / max(result.elapsed, 1e-9):.1f} commands/s"),
        ("clients", str(plan.clients)),
        ("deliveries", str(len(ordered))),
        ("missing deliveries", str(result.missing())),
    ]
    for name, fraction in (("p50", 0.5), ("p90", 0.9), ("p99", 0.99), ("max", 1.0)):
        rows.append((f"latency {name}", f"{percentile(ordered, fraction) * 1000:.1f} ms"))
    for name, fraction in (("p50", 0.5), ("p99", 0.99)):
        lag = percentile(result.commit_lags, fraction) * 1000
        rows.append((f"commit -> receipt {name}", f"{lag:.1f} ms"))
    for name, value in rows:
        table.add_row(name, value)
    console.print(table)


async def run_load(plan: LoadPlan) -> int:
    """The ``chronicle load`` verb: measure with a progress bar, print, exit status."""
    console = Console()
    columns = (TextColumn("{task.description}"), BarColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console) as progress:
        result = await measure(plan, progress)
    report(plan, result, console)
    return 0 if result.failed == 0 and result.missing() == 0 else 1
