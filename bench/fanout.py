"""WebSocket fan-out benchmark: the bridge against a raw `websockets` broadcast.

One run, loopback only, bounded in count and time:

(a) baseline: a raw `websockets` server (its own process) broadcasting N event-sized
    messages to C clients with ``websockets.broadcast``;
(b) ours: a bridge replica (``chronicle serve bridge``, its own process) delivering N
    events published to RabbitMQ to C subscribed clients;
    in both the clients run in a separate process, and deliveries/s is N x C over the
    time from the first publish to the last client's last receipt; (a) and (b) are
    alternated for a few rounds and the medians reported, with each server process's
    deliveries per CPU-second (less sensitive to a busy machine);
(c) the RSS of one replica holding M idle subscribed connections;
(d) end-to-end latency POST -> client receipt at R commands/s through the whole
    pipeline (commands, PostgreSQL, relay, RabbitMQ, bridge), via `chronicle load
    --json` in its own process (open loop; the achieved rate is reported), with each
    process's CPU per command, the machine's busy share, and the relay's and bridge's
    lag histograms (recording -> relay read, -> broker confirm, -> bridge fan-out).

Ends with one JSON line: {"bench": "fanout", "ours", "baseline", "ratio", "unit", ...}.
``--only PART`` (repeatable) runs just those parts, e.g. ``--only latency`` for (d).
Needs PostgreSQL and RabbitMQ (see bench/common.py and CHRONICLE_BENCH_AMQP_URL).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from bench.common import create_scratch_database, drop_database
from bench.fanout_roles import free_port, raise_nofile, sample_event
from chronicle.migrations import all_migrations
from eventstore.bus import Topology, open_bus
from eventstore.bus.wire import encode
from eventstore.migrations import migrate

AMQP_URL = os.environ.get("CHRONICLE_BENCH_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
CHRONICLE = str(Path(sys.executable).with_name("chronicle"))


# -- orchestration ------------------------------------------------------------------


class Child:
    """A subprocess speaking lines on stdout."""

    def __init__(self, args: list[str], env: dict[str, str] | None = None) -> None:
        self.popen = subprocess.Popen(
            args,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=None if os.environ.get("BENCH_VERBOSE") else subprocess.DEVNULL,
            env={**os.environ, **(env or {})},
            text=True,
        )

    async def line(self, timeout: float = 180) -> str:
        assert self.popen.stdout is not None
        read = asyncio.to_thread(self.popen.stdout.readline)
        text = await asyncio.wait_for(read, timeout)
        if not text:
            raise RuntimeError(f"{self.popen.args} ended early")
        return text.strip()

    def send(self, text: str = "\n") -> None:
        assert self.popen.stdin is not None
        self.popen.stdin.write(text)
        self.popen.stdin.flush()

    def stop(self) -> None:
        if self.popen.poll() is None:
            with contextlib.suppress(BrokenPipeError):
                assert self.popen.stdin is not None
                self.popen.stdin.close()
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(20)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()


def clients(
    url: str, count: int, expect: int, *, subscribe: bool, hold: bool = False, lags: bool = False
) -> Child:
    args = [sys.executable, "-m", "bench.fanout_roles", "--role", "clients", "--url", url]
    args += ["--clients", str(count), "--events", str(expect)]
    args += (["--subscribe"] if subscribe else []) + (["--hold"] if hold else [])
    args += ["--lags"] if lags else []
    return Child(args)


async def baseline(n_clients: int, events: int) -> tuple[float, float]:
    """Deliveries/s, and deliveries per CPU-second of the server process."""
    port = free_port()
    server = Child(
        [
            *(sys.executable, "-m", "bench.fanout_roles", "--role", "raw-server"),
            *("--port", str(port), "--clients", str(n_clients), "--events", str(events)),
        ]
    )
    receivers: Child | None = None
    try:
        await server.line()
        receivers = clients(f"ws://127.0.0.1:{port}", n_clients, events, subscribe=False)
        await receivers.line()
        cpu = cpu_seconds(server.popen.pid)
        start = time.time()
        server.send()
        rate = _rate(json.loads(await receivers.line()), start, n_clients, events)
        return rate, n_clients * events / (cpu_seconds(server.popen.pid) - cpu)
    finally:
        for child in (receivers, server):
            if child is not None:
                child.stop()


def _rate(report: dict[str, Any], start: float, n_clients: int, events: int) -> float:
    if report["done"] != n_clients:
        raise RuntimeError(f"only {report['done']} of {n_clients} clients got every event")
    return float(n_clients * events / (report["last"] - start))


@contextlib.asynccontextmanager
async def bridge_process(
    store_url: str, prefix: str, extra: dict[str, str] | None = None
) -> AsyncIterator[tuple[Child, int]]:
    port = free_port()
    env = {
        "CHRONICLE_EVENTSTORE_URL": store_url,
        "CHRONICLE_BROKER_URL": AMQP_URL,
        "CHRONICLE_BROKER_PREFIX": prefix,
        "CHRONICLE_AUTH": "disabled",
        "CHRONICLE_HTTP_PORT": str(port),
        "CHRONICLE_LOG_LEVEL": "WARNING",
        "CHRONICLE_BRIDGE_PING_INTERVAL": "60",
        **(extra or {}),
    }
    child = Child([CHRONICLE, "serve", "bridge"], env)
    try:
        await _wait_ready(f"http://127.0.0.1:{port}/readyz", child)
        yield child, port
    finally:
        child.stop()


async def _wait_ready(url: str, child: Child, seconds: float = 30) -> None:
    async with httpx.AsyncClient() as http:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if child.popen.poll() is not None:
                raise RuntimeError(f"{child.popen.args} exited")
            with contextlib.suppress(httpx.HTTPError):
                if (await http.get(url, timeout=1)).status_code == 200:
                    return
            await asyncio.sleep(0.1)
    raise RuntimeError(f"{url} not ready in {seconds}s")


async def ours(n_clients: int, events: int, workdir: Path) -> tuple[float, float]:
    """Deliveries/s, and deliveries per CPU-second of the bridge process."""
    prefix = f"bench_{uuid.uuid4().hex[:8]}"
    topology = Topology(prefix=prefix)
    bus = open_bus(AMQP_URL, topology)
    receivers: Child | None = None
    try:
        await bus.declare()
        workdir.mkdir(parents=True, exist_ok=True)
        store_url = f"sqlite:///{workdir / 'fanout.db'}"
        await migrate(store_url, all_migrations())
        async with bridge_process(store_url, prefix) as (bridge, port):
            receivers = clients(f"ws://127.0.0.1:{port}/v1/ws", n_clients, events, subscribe=True)
            await receivers.line()
            envelopes = [encode(sample_event(p), p - 1) for p in range(1, events + 1)]
            cpu = cpu_seconds(bridge.popen.pid)
            start = time.time()
            await bus.publish(envelopes)
            rate = _rate(json.loads(await receivers.line()), start, n_clients, events)
            return rate, n_clients * events / (cpu_seconds(bridge.popen.pid) - cpu)
    finally:
        if receivers is not None:
            receivers.stop()
        await _delete_topology(bus, topology)


async def _delete_topology(bus: Any, topology: Topology) -> None:
    await bus.close()
    import aio_pika

    connection = await aio_pika.connect(AMQP_URL)
    async with connection:
        channel = await connection.channel()
        await channel.queue_delete(topology.broadcast)
        await channel.exchange_delete(topology.exchange)


async def bridge_lag(rate: float, events: int, n_clients: int, workdir: Path) -> dict[str, float]:
    """Publish -> receipt (ms) through RabbitMQ and one replica alone, at ``rate``/s:
    the bridge's share of the end-to-end latency."""
    prefix = f"bench_{uuid.uuid4().hex[:8]}"
    topology = Topology(prefix=prefix)
    bus = open_bus(AMQP_URL, topology)
    receivers: Child | None = None
    try:
        await bus.declare()
        store_url = f"sqlite:///{workdir / 'lag.db'}"
        await migrate(store_url, all_migrations())
        async with bridge_process(store_url, prefix) as (_, port):
            url = f"ws://127.0.0.1:{port}/v1/ws"
            receivers = clients(url, n_clients, events, subscribe=True, lags=True)
            await receivers.line()
            start = time.perf_counter()
            for position in range(1, events + 1):
                await asyncio.sleep(max(0.0, start + position / rate - time.perf_counter()))
                await bus.publish([encode(sample_event(position), position - 1)])
            report = json.loads(await receivers.line())
        return {
            "bridge_lag_p50_ms": round(report["lag_p50"] * 1000, 1),
            "bridge_lag_p99_ms": round(report["lag_p99"] * 1000, 1),
        }
    finally:
        if receivers is not None:
            receivers.stop()
        await _delete_topology(bus, topology)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class CpuSampler:
    """CPU time of the pipeline's processes, and of the whole machine, from now on."""

    ROLES = ("commands", "relay", "bridge")

    def __init__(self, children: list[Child]) -> None:
        self._pids = [child.popen.pid for child in children]
        self._start = [cpu_seconds(pid) for pid in self._pids]
        self._machine = _machine_ticks()

    def per_command(self, commands: float) -> dict[str, float]:
        """Milliseconds of CPU per command of each role; the machine's busy share (%)
        over the same time, all of its CPUs and everyone's processes included."""
        pairs = zip(self._pids, self._start, strict=True)
        used = [cpu_seconds(pid) - start for pid, start in pairs]
        now = _machine_ticks()
        busy, total = now[0] - self._machine[0], now[1] - self._machine[1]
        shares = {
            f"cpu_ms_per_command_{role}": round(seconds * 1000 / max(commands, 1), 2)
            for role, seconds in zip(self.ROLES, used, strict=True)
        }
        return shares | {"machine_busy_pct": round(100 * busy / max(total, 1), 1)}


def _machine_ticks() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs since boot (``/proc/stat``)."""
    ticks = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = ticks[3] + ticks[4]
    return sum(ticks) - idle, sum(ticks)


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


async def idle_rss(n_clients: int, workdir: Path) -> tuple[float, float]:
    """RSS (MB) of one replica before and while it holds ``n_clients`` subscribed."""
    store_url = f"sqlite:///{workdir / 'idle.db'}"
    await migrate(store_url, all_migrations())
    prefix = f"bench_{uuid.uuid4().hex[:8]}"
    holders: Child | None = None
    async with bridge_process(store_url, prefix) as (bridge, port):
        try:
            before = rss_mb(bridge.popen.pid)
            holders = clients(
                f"ws://127.0.0.1:{port}/v1/ws", n_clients, 0, subscribe=True, hold=True
            )
            await holders.line(timeout=300)
            return before, rss_mb(bridge.popen.pid)
        finally:
            if holders is not None:
                holders.stop()
            bus = open_bus(AMQP_URL, Topology(prefix=prefix))
            await _delete_topology(bus, Topology(prefix=prefix))


async def pipeline_latency(rate: float, seconds: float, workdir: Path) -> dict[str, float]:
    """p50/p99 (ms) POST -> WebSocket receipt at ``rate`` commands/s, full pipeline."""
    name, url = await create_scratch_database("chronicle_bench_ws")
    prefix = f"bench_{uuid.uuid4().hex[:8]}"
    env = {
        "CHRONICLE_EVENTSTORE_URL": url,
        "CHRONICLE_BROKER_URL": AMQP_URL,
        "CHRONICLE_BROKER_PREFIX": prefix,
        "CHRONICLE_AUTH": "disabled",
        "CHRONICLE_TRANSFER_MANAGER": "false",
        "CHRONICLE_LOG_LEVEL": "WARNING",
    }
    children: list[Child] = []
    try:
        await migrate(url, all_migrations())
        ports = {"commands": free_port(), "relay": free_port()}
        for verb, port in ports.items():
            child = Child([CHRONICLE, "serve", verb], {**env, "CHRONICLE_HTTP_PORT": str(port)})
            children.append(child)
            await _wait_ready(f"http://127.0.0.1:{port}/readyz", child)
        async with bridge_process(url, prefix) as (bridge, bridge_port):
            cpu = CpuSampler([*children, bridge])
            figures = await _generate(rate, seconds, ports["commands"], bridge_port)
            shares = cpu.per_command(figures["posted_ok"] + figures["posted_failed"])
            relay_metrics = await _scrape(ports["relay"])
            bridge_metrics = await _scrape(bridge_port)
        stages = {
            "relay_read": _quantiles(relay_metrics, "chronicle_relay_read_lag_seconds"),
            "relay_confirm": _quantiles(relay_metrics, "chronicle_relay_lag_seconds"),
            "bridge_fanout": _quantiles(bridge_metrics, "bridge_event_lag_seconds"),
        }
        counters = {
            "bridge_gap_repairs": _value(bridge_metrics, "bridge_gap_repairs_total"),
            "bridge_duplicates": _value(bridge_metrics, "bridge_duplicates_total"),
        }
        return _latency_figures(figures) | shares | _stage_figures(stages) | counters
    finally:
        for child in reversed(children):
            child.stop()
        from chronicle.topology import projection_queues

        await _delete_queues(prefix, [q.name for q in projection_queues()])
        await drop_database(name)


async def _generate(rate: float, seconds: float, commands: int, bridge: int) -> dict[str, float]:
    """Run `chronicle load --json` (10 clients, 20 accounts) in a process of its own, so
    that it gets a CPU of its own as far as the machine has one; its figures."""
    load = [CHRONICLE, "load", "--json", "--rate", str(rate), "--duration", str(seconds)]
    load += ["--clients", "10", "--accounts", "20"]
    load += ["--commands-url", f"http://127.0.0.1:{commands}"]
    load += ["--bridge-url", f"ws://127.0.0.1:{bridge}/v1/ws"]
    generator = Child(load)
    try:
        figures: dict[str, float] = json.loads(await generator.line(timeout=seconds + 120))
        return figures
    finally:
        generator.stop()


Samples = list[tuple[str, dict[str, str], float]]


async def _scrape(port: int) -> Samples:
    """Every sample of a process's /metrics: (name, labels, value)."""
    async with httpx.AsyncClient() as http:
        text = (await http.get(f"http://127.0.0.1:{port}/metrics")).text
    return [
        (sample.name, sample.labels, sample.value)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    ]


def _value(samples: Samples, name: str) -> float:
    return sum(value for sample, _, value in samples if sample == name)


def _quantiles(samples: Samples, name: str) -> tuple[float, float]:
    """p50 and p99 (seconds) of the histogram ``name``, by linear interpolation inside
    its buckets (good to a bucket's width)."""
    buckets = sorted(
        (float(labels["le"]), value)
        for sample, labels, value in samples
        if sample == f"{name}_bucket"
    )
    return _bucket_quantile(buckets, 0.5), _bucket_quantile(buckets, 0.99)


def _bucket_quantile(buckets: list[tuple[float, float]], fraction: float) -> float:
    total = buckets[-1][1] if buckets else 0.0
    lower, below = 0.0, 0.0
    for upper, count in buckets:
        if count >= fraction * total and count > below:
            if upper == float("inf"):
                return lower
            return lower + (upper - lower) * (fraction * total - below) / (count - below)
        lower, below = upper, count
    return lower


def _stage_figures(stages: dict[str, tuple[float, float]]) -> dict[str, float]:
    """Recording -> broker confirm (relay) and recording -> fan-out (bridge), in ms."""
    figures = {}
    for stage, (p50, p99) in stages.items():
        figures[f"commit_to_{stage}_p50_ms"] = round(p50 * 1000, 1)
        figures[f"commit_to_{stage}_p99_ms"] = round(p99 * 1000, 1)
    return figures


def _latency_figures(figures: dict[str, float]) -> dict[str, float]:
    """The JSON line's names for the figures of `chronicle load`."""
    names = {
        "latency_p50_ms": "latency_p50_ms",
        "latency_p99_ms": "latency_p99_ms",
        "latency_max_ms": "latency_max_ms",
        "latency_all_clients_p50_ms": "latency_all_clients_p50_ms",
        "latency_all_clients_p99_ms": "latency_all_clients_p99_ms",
        "rate_asked": "latency_commands_per_s_asked",
        "rate_achieved": "latency_commands_per_s",
        "send_delay_p99_ms": "latency_send_delay_p99_ms",
        "posted_failed": "latency_failed",
        "missing": "latency_missing",
        "commit_to_receipt_p50_ms": "commit_to_receipt_p50_ms",
        "commit_to_receipt_p99_ms": "commit_to_receipt_p99_ms",
        "cpu_ms_per_command": "cpu_ms_per_command_load",
    }
    return {ours: figures[theirs] for theirs, ours in names.items()}


async def _delete_queues(prefix: str, names: list[str]) -> None:
    topology = Topology(prefix=prefix)
    bus = open_bus(AMQP_URL, topology)
    import aio_pika

    connection = await aio_pika.connect(AMQP_URL)
    async with connection:
        channel = await connection.channel()
        for queue in names:
            await channel.queue_delete(topology.queue_name(queue))
    await _delete_topology(bus, topology)


async def throughput(args: argparse.Namespace, workdir: Path) -> tuple[float, ...]:
    """(a) and (b), alternated for ``args.rounds`` rounds; the median of each figure
    (a shared machine's load drifts; alternating spreads the drift over both)."""
    samples: dict[str, list[float]] = {"raw": [], "raw_cpu": [], "ours": [], "ours_cpu": []}
    for round_ in range(args.rounds):
        raw, raw_cpu = await baseline(args.clients, args.events)
        bridged, bridged_cpu = await ours(args.clients, args.events, workdir / f"r{round_}")
        for key, value in zip(samples, (raw, raw_cpu, bridged, bridged_cpu), strict=True):
            samples[key].append(value)
        print(
            f"round {round_ + 1}: (a) raw broadcast {raw:,.0f}/s ({raw_cpu:,.0f}/CPU-s),"
            f" (b) bridge {bridged:,.0f}/s ({bridged_cpu:,.0f}/CPU-s)",
            flush=True,
        )
    return tuple(statistics.median(values) for values in samples.values())


PARTS = ("throughput", "rss", "bridge-lag", "latency")


async def main(args: argparse.Namespace) -> None:
    """Run the parts asked for (all by default) and print the JSON line of their figures."""
    raise_nofile()
    parts = set(args.only or PARTS)
    figures: dict[str, Any] = {"bench": "fanout"}
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        if "throughput" in parts:
            figures |= await _throughput_figures(args, workdir)
        if "rss" in parts:
            before, holding = await idle_rss(args.idle, workdir)
            print(f"(c) RSS idle: {before:.0f} MB, with {args.idle} subscribed: {holding:.0f} MB")
            figures |= {
                "idle_connections": args.idle,
                "rss_mb_idle_replica": round(before, 1),
                "rss_mb_with_idle_connections": round(holding, 1),
            }
        if "bridge-lag" in parts:
            lag = await bridge_lag(args.rate, int(args.rate * args.seconds), 10, workdir)
            print(f"(d') publish -> receipt at {args.rate}/s, bridge alone: {lag}", flush=True)
            figures |= lag
        if "latency" in parts:
            latency = await pipeline_latency(args.rate, args.seconds, workdir)
            print(f"(d) end-to-end at {args.rate}/s: {latency}", flush=True)
            figures |= latency
    print(json.dumps(figures))


async def _throughput_figures(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    raw, raw_cpu, bridged, bridged_cpu = await throughput(args, workdir)
    return {
        "ours": round(bridged),
        "baseline": round(raw),
        "ratio": round(bridged / raw, 3),
        "unit": "deliveries/s",
        "ours_per_cpu_s": round(bridged_cpu),
        "baseline_per_cpu_s": round(raw_cpu),
        "clients": args.clients,
        "events": args.events,
        "rounds": args.rounds,
    }


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--events", type=int, default=300)
    parser.add_argument("--idle", type=int, default=10_000)
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=3, help="alternated (a)/(b) rounds")
    parser.add_argument(
        "--only",
        action="append",
        choices=PARTS,
        help="run only this part (repeatable): throughput (a)+(b), rss (c),"
        " bridge-lag (d'), latency (d)",
    )
    asyncio.run(main(parser.parse_args()))


if __name__ == "__main__":
    cli()
