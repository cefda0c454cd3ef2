"""`chronicle load`: a load generator for the whole pipeline.

It opens a few accounts, subscribes N WebSocket clients to the deposits, then posts
deposits open loop: request i is due at ``i / rate`` seconds, whether or not earlier
ones were answered. End-to-end latency is the time from a request's due time to a
client receiving the event it produced (matched by position, so an event arriving
before its HTTP response is still counted right), one sample per client and event.
Counting from the due time rather than the moment the request left means a generator
that falls behind its schedule shows up as latency instead of hiding it; the report
also says how late requests left and the rate actually achieved, so such a run is
recognisable. The exit status is 1 when a request failed or a client missed an event.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from chronicle.load_http import HttpError, HttpPool
from chronicle.load_ws import ListeningSocket

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
    connections: int = 32
    """Keep-alive HTTP connections at most; a request due while all are busy waits."""

    @property
    def total(self) -> int:
        return max(1, round(self.rate * self.duration))


@dataclass
class LoadResult:
    """What a run measured; times in seconds (``time.perf_counter``)."""

    sent: int = 0
    failed: int = 0
    elapsed: float = 0.0
    """From the first due time to the moment the last request left."""
    sent_at: dict[int, float] = field(default_factory=dict)
    """Due time of the request that produced each position."""
    send_delays: list[float] = field(default_factory=list)
    """How late each request left after its due time (the generator's own lag)."""
    received_at: list[dict[int, float]] = field(default_factory=list)
    commit_lags: list[float] = field(default_factory=list)
    """Seconds from the event's commit (its ``recorded_at``) to its receipt: the
    relay, broker and bridge share of the latency, without the command API's."""

    @property
    def achieved_rate(self) -> float:
        """Requests that left per second over the sending window."""
        return len(self.send_delays) / max(self.elapsed, 1e-9)

    def latencies(self) -> list[float]:
        """Due time -> receipt of every (client, event) pair received, sorted."""
        found = [
            seen[position] - sent
            for position, sent in self.sent_at.items()
            for seen in self.received_at
            if position in seen
        ]
        return sorted(found)

    def latencies_to_all(self) -> list[float]:
        """Due time -> receipt by the last of the clients, of every event that every
        client received, sorted: when the whole audience had it."""
        found = [
            max(seen[position] for seen in self.received_at) - sent
            for position, sent in self.sent_at.items()
            if self.received_at and all(position in seen for seen in self.received_at)
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
    """One WebSocket client recording when each event frame arrived.

    While the load runs its socket only stamps and keeps the raw frames (see
    chronicle.load_ws); they are decoded later, in :meth:`wait_for`, so that decoding
    never delays the stamping of the next frame nor the generator's schedule.
    """

    def __init__(self, url: str, token: str | None) -> None:
        self._url = url
        self._token = token
        self.seen: dict[int, float] = {}
        self.commit_lags: list[float] = []
        self._decoded = 0
        self._ws: ListeningSocket | None = None

    async def start(self) -> None:
        """Connect and subscribe; raises RuntimeError when the subscribe is refused,
        WebSocketError or OSError when the connection is."""
        headers = {"Authorization": f"Bearer {self._token}"} if self._token else None
        self._ws = await ListeningSocket.open(self._url, headers)
        self._ws.send_text(json.dumps({"op": "subscribe", "id": "load", "filter": DEPOSITS}))
        if not await self._ws.next_message(0):
            raise RuntimeError("the bridge closed the connection before replying")
        reply = json.loads(self._ws.messages[0][2])
        if reply.get("op") != "subscribed":
            raise RuntimeError(f"subscribe refused: {reply}")
        self._decoded = 1

    def _decode(self) -> None:
        if self._ws is None:
            return
        frames, start = self._ws.messages, self._decoded
        self._decoded = len(frames)
        for received, wall, message in frames[start:]:
            frame = json.loads(message)
            if frame.get("op") == "event":
                self.seen.setdefault(frame["position"], received)
                recorded = datetime.fromisoformat(frame["recorded_at"]).timestamp()
                self.commit_lags.append(wall - recorded)

    async def wait_for(self, positions: set[int]) -> None:
        """Return once every one of ``positions`` arrived, or the connection closed
        (what did not arrive by then is reported as missing)."""
        self._decode()
        while self._ws is not None and not positions <= self.seen.keys():
            if not await self._ws.next_message(self._decoded):
                break
            self._decode()

    async def stop(self) -> None:
        if self._ws is not None:
            await self._ws.close()
        self._decode()


async def open_accounts(http: HttpPool, count: int) -> list[str]:
    ids = []
    for _ in range(count):
        account_id = f"load-{uuid.uuid4().hex[:10]}"
        await http.post_json("/v1/accounts", {"account_id": account_id, "owner": "load"})
        ids.append(account_id)
    return ids


async def post_deposits(
    http: HttpPool,
    plan: LoadPlan,
    accounts: Sequence[str],
    result: LoadResult,
    progress: Progress | None = None,
) -> None:
    """POST ``plan.total`` deposits, request i due at ``i / plan.rate`` s (open loop)."""
    task_id = progress.add_task("posting", total=plan.total) if progress else None
    start = time.perf_counter()

    async def one(index: int, due: float) -> None:
        account = accounts[index % len(accounts)]
        result.send_delays.append(time.perf_counter() - due)
        try:
            _, body = await http.post_json(f"/v1/accounts/{account}/deposits", {"amount": 1})
            result.sent_at[body["position"]] = due
            result.sent += 1
        except HttpError:
            result.failed += 1
        if progress is not None and task_id is not None:
            progress.advance(task_id)

    async with asyncio.TaskGroup() as group:
        for index in range(plan.total):
            due = start + index / plan.rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            group.create_task(one(index, due))
        # The sending window: first due time to the last request leaving, plus one
        # interval (n requests at rate r span (n - 1) / r seconds).
        result.elapsed = time.perf_counter() - start + 1 / plan.rate


async def wait_delivered(result: LoadResult, listeners: Sequence[Listener], seconds: float) -> None:
    """Return once every client saw every posted position, or after ``seconds``."""
    wanted = set(result.sent_at)
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            for listener in listeners:
                await listener.wait_for(wanted)


async def measure(plan: LoadPlan, progress: Progress | None = None) -> LoadResult:
    """Run ``plan`` against running services and return the measurements.

    Raises HttpError when the accounts cannot be opened.
    """
    headers = {"Authorization": f"Bearer {plan.token}"} if plan.token else {}
    http = HttpPool(plan.commands_url, headers, plan.connections)
    result = LoadResult()
    try:
        accounts = await open_accounts(http, plan.accounts)
        listeners = [Listener(plan.bridge_url, plan.token) for _ in range(plan.clients)]
        await asyncio.gather(*(listener.start() for listener in listeners))
        try:
            await post_deposits(http, plan, accounts, result, progress)
            await wait_delivered(result, listeners, 10.0)
        finally:
            await asyncio.gather(*(listener.stop() for listener in listeners))
    finally:
        await http.close()
    result.received_at = [listener.seen for listener in listeners]
    result.commit_lags = sorted(lag for listener in listeners for lag in listener.commit_lags)
    result.send_delays.sort()
    return result


def summary(plan: LoadPlan, result: LoadResult) -> dict[str, float]:
    """The figures of a run, in milliseconds and commands per second."""
    ordered = result.latencies()
    figures = {
        "rate_asked": plan.rate,
        "rate_achieved": round(result.achieved_rate, 1),
        "posted_ok": float(result.sent),
        "posted_failed": float(result.failed),
        "deliveries": float(len(ordered)),
        "missing": float(result.missing()),
    }
    for name, fraction in (("p50", 0.5), ("p90", 0.9), ("p99", 0.99), ("max", 1.0)):
        figures[f"latency_{name}_ms"] = round(percentile(ordered, fraction) * 1000, 1)
    to_all = result.latencies_to_all()
    for name, fraction in (("p50", 0.5), ("p99", 0.99)):
        figures[f"latency_all_clients_{name}_ms"] = round(percentile(to_all, fraction) * 1000, 1)
        lag = percentile(result.commit_lags, fraction)
        figures[f"commit_to_receipt_{name}_ms"] = round(lag * 1000, 1)
        delay = percentile(result.send_delays, fraction)
        figures[f"send_delay_{name}_ms"] = round(delay * 1000, 1)
    return figures


def report(plan: LoadPlan, result: LoadResult, console: Console) -> None:
    figures = summary(plan, result)
    table = Table(title="chronicle load")
    table.add_column("measure")
    table.add_column("value", justify="right")
    rows = [
        ("commands posted", f"{result.sent} ok, {result.failed} failed"),
        ("rate", f"{figures['rate_achieved']:.1f} commands/s of {plan.rate:g} asked"),
        ("clients", str(plan.clients)),
        ("deliveries", f"{len(result.latencies())}"),
        ("missing deliveries", str(result.missing())),
    ]
    for name in ("p50", "p90", "p99", "max"):
        rows.append((f"latency {name}, each delivery", f"{figures[f'latency_{name}_ms']:.1f} ms"))
    for name in ("p50", "p99"):
        to_all = figures[f"latency_all_clients_{name}_ms"]
        rows.append((f"latency {name}, to every client", f"{to_all:.1f} ms"))
    for name in ("p50", "p99"):
        rows.append((f"commit -> receipt {name}", f"{figures[f'commit_to_receipt_{name}_ms']} ms"))
    for name in ("p50", "p99"):
        rows.append((f"request left late {name}", f"{figures[f'send_delay_{name}_ms']} ms"))
    for name, text in rows:
        table.add_row(name, text)
    console.print(table)


async def run_load(plan: LoadPlan, *, as_json: bool = False) -> int:
    """The ``chronicle load`` verb: measure (with a progress bar, or quietly when
    ``as_json``), print a table or one JSON line of :func:`summary`, exit status."""
    console = Console()
    if as_json:
        cpu = time.process_time()
        result = await measure(plan)
        figures = summary(plan, result)
        # The generator's own cost, to tell a loaded generator from a loaded system.
        used = (time.process_time() - cpu) * 1000 / max(result.sent + result.failed, 1)
        print(json.dumps(figures | {"cpu_ms_per_command": round(used, 2)}), flush=True)
    else:
        columns = (TextColumn("{task.description}"), BarColumn(), TimeRemainingColumn())
        with Progress(*columns, console=console) as progress:
            result = await measure(plan, progress)
        report(plan, result, console)
    return 0 if result.failed == 0 and result.missing() == 0 else 1


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's loop when it is installed (it comes with uvicorn's standard extras), else
    asyncio's: the generator's own per-frame and per-request cost is mostly the event
    loop's, and the less it costs the less it competes with the system it measures."""
    if importlib.util.find_spec("uvloop") is None:
        return None
    import uvloop

    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


def run(plan: LoadPlan, *, as_json: bool = False) -> int:
    """Run :func:`run_load` on a fresh event loop (uvloop when installed)."""
    with asyncio.Runner(loop_factory=_loop_factory()) as runner:
        return runner.run(run_load(plan, as_json=as_json))
