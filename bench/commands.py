"""Benchmark of the command API: `chronicle serve commands` on PostgreSQL.

Creates and migrates a scratch database, pre-fills it through the event store, starts
`chronicle serve commands` as a subprocess (JWT auth on), and drives it from a load
client in another process (asyncio, raw HTTP/1.1 keep-alive connections, loopback
only, bounded in requests and time). Phases:

  (a)  GET /healthz                                  the HTTP ceiling of the server
  (b)  deposits spread over 1,000 accounts
  (bk) the same with an Idempotency-Key on every deposit (what a careful client sends)
  (c)  deposits spread over 100 accounts that each already hold 10,000 events
  and, for reference, a bare app on the same stack (FastAPI, uvicorn, uvloop, asyncpg;
  no middleware, no auth, no rule) in its own process:
  (bare a) its GET /healthz
  (bare e) a POST that parses the JSON body and answers JSON, touching no database:
           what the stack charges for a POST before any work is done
  (floor)  a POST that does one raw INSERT and nothing else: what any endpoint that
           writes to the database once per request can reach on this machine

Each phase reports the server process's CPU time per request too (less sensitive to a
busy machine than throughput). Prints a table, then one JSON line:
{"bench": "commands", "ours": <b>, "baseline": <a>, ...}. The database is dropped at the
end.

    python -m bench.commands [--requests 20000] [--seconds 15] [--connections 32]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import asyncpg
import jwt
from fastapi import FastAPI, Request
from starlette.responses import Response

from bench.common import create_scratch_database, drop_database, report
from chronicle.http_server import serve_http
from chronicle.migrations import all_migrations
from chronicle.runtime import run_until_signalled
from eventstore import NewEvent, open_event_store
from eventstore.migrations import migrate

SECRET = "bench-secret-of-a-reasonable-length-0123456789"
HOST = "127.0.0.1"
SPREAD = [f"b{i:04d}" for i in range(1000)]
"""The 1,000 accounts of phase (b)."""
DEEP = [f"c{i:03d}" for i in range(100)]
"""The 100 accounts of phase (c), each pre-filled with ``--depth`` events."""


# --- load client (runs in its own process) -------------------------------------------


@dataclass
class PhaseResult:
    name: str
    requests: int
    errors: int
    seconds: float
    rate: float
    p50_ms: float
    p99_ms: float
    statuses: dict[str, int]
    server_cpu_us: float = 0.0
    """CPU time of the server process per request (user + system), load-independent."""


async def _read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ", 2)[1])
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    if length:
        await reader.readexactly(length)
    return status


def _request(spec: dict[str, Any], index: int, rng: random.Random) -> bytes:
    if spec["kind"] == "healthz":
        return f"GET /healthz HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode()
    accounts = spec["accounts"]
    # The warm-up touches every account once; measured phases pick at random.
    account = accounts[index % len(accounts)] if spec.get("each") else rng.choice(accounts)
    body = b'{"amount": 1}'
    key_header = f"Idempotency-Key: {spec['run']}-{index}\r\n" if spec["keys"] else ""
    return (
        f"POST {spec.get('prefix', '')}/v1/accounts/{account}/deposits HTTP/1.1\r\nHost: {HOST}\r\n"
        f"Authorization: Bearer {spec['token']}\r\nContent-Type: application/json\r\n"
        f"{key_header}Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body


async def _worker(
    spec: dict[str, Any],
    counter: Any,
    deadline: float,
    latencies: list[float],
    statuses: dict[int, int],
) -> None:
    reader, writer = await asyncio.open_connection(HOST, spec["port"])
    rng = random.Random()
    try:
        for index in counter:
            if index >= spec["requests"] or time.perf_counter() > deadline:
                break
            request = _request(spec, index, rng)
            started = time.perf_counter()
            writer.write(request)
            status = await _read_response(reader)
            latencies.append(time.perf_counter() - started)
            statuses[status] = statuses.get(status, 0) + 1
    finally:
        writer.close()


async def run_phase(spec: dict[str, Any]) -> PhaseResult:
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    counter = itertools.count()
    started = time.perf_counter()
    deadline = started + spec["seconds"]
    await asyncio.gather(
        *(_worker(spec, counter, deadline, latencies, statuses) for _ in range(spec["connections"]))
    )
    elapsed = time.perf_counter() - started
    latencies.sort()
    quantiles = statistics.quantiles(latencies, n=100, method="inclusive")
    ok = sum(n for status, n in statuses.items() if status < 300)
    return PhaseResult(
        name=spec["name"],
        requests=len(latencies),
        errors=len(latencies) - ok,
        seconds=round(elapsed, 2),
        rate=round(ok / elapsed, 1),
        p50_ms=round(quantiles[49] * 1000, 2),
        p99_ms=round(quantiles[98] * 1000, 2),
        statuses={str(k): v for k, v in sorted(statuses.items())},
    )


def client_main(spec_json: str) -> None:
    try:
        import uvloop

        uvloop.install()
    except ImportError:  # pragma: no cover - uvloop ships with uvicorn[standard]
        pass
    result = asyncio.run(run_phase(json.loads(spec_json)))
    print(json.dumps(asdict(result)))


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_client(spec: dict[str, Any], server_pid: int | None = None) -> PhaseResult:
    """One phase, driven from a separate process."""
    cpu_before = cpu_seconds(server_pid) if server_pid else 0.0
    output = subprocess.run(
        [sys.executable, "-m", "bench.commands", "--client", json.dumps(spec)],
        check=True,
        capture_output=True,
        text=True,
        timeout=spec["seconds"] + 120,
    )
    result = PhaseResult(**json.loads(output.stdout.strip().splitlines()[-1]))
    if server_pid and result.requests:
        used = cpu_seconds(server_pid) - cpu_before
        result.server_cpu_us = round(used / result.requests * 1e6, 1)
    return result


# --- fixture: database, pre-fill, server --------------------------------------------


async def prefill(url: str, spread: list[str], deep: list[str], depth: int) -> float:
    """Open every account; give each ``deep`` account ``depth`` events in total."""
    store = await open_event_store(url, pool_size=8)
    started = time.perf_counter()
    try:
        gate = asyncio.Semaphore(8)

        async def one(account: str, events: int) -> None:
            async with gate:
                stream = f"account-{account}"
                opened = NewEvent("AccountOpened", {"account_id": account, "owner": "bench"},
                                  {"schema_version": 2})  # fmt: skip
                await store.append(stream, [opened])
                deposit = {"account_id": account, "amount": 1}
                for done in range(1, events, 1000):
                    batch = min(1000, events - done)
                    batch_events = [NewEvent("MoneyDeposited", deposit) for _ in range(batch)]
                    await store.append(stream, batch_events)

        await asyncio.gather(*(one(a, 1) for a in spread), *(one(a, depth) for a in deep))
    finally:
        await store.close()
    return time.perf_counter() - started


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def start_server(url: str, port: int, extra: list[str]) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHRONICLE_")}
    env.update(
        CHRONICLE_EVENTSTORE_URL=url,
        CHRONICLE_HTTP_PORT=str(port),
        CHRONICLE_JWT_SECRET=SECRET,
        CHRONICLE_LOG_LEVEL="WARNING",
    )
    env.update(item.split("=", 1) for item in extra)
    chronicle = str(Path(sys.executable).parent / "chronicle")
    return subprocess.Popen([chronicle, "serve", "commands"], env=env)


async def wait_ready(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            reader, writer = await asyncio.open_connection(HOST, port)
            writer.write(f"GET /readyz HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode())
            status = await _read_response(reader)
            writer.close()
            if status == 200:
                return
        except OSError:
            pass
        await asyncio.sleep(0.1)
    raise RuntimeError("the server did not become ready")


# --- the reference: the bare stack -----------------------------------------------------


async def _no_reset(_: asyncpg.Connection) -> None:
    """The pool hands connections back as they are (the event store does the same)."""


def bare_main(url: str, port: int) -> None:
    """Serve the reference app until SIGTERM (run in its own process): the same server
    stack as ours (FastAPI, uvicorn, uvloop, asyncpg) with no middleware, no auth and no
    rule, so its figures are what that stack itself allows on this machine."""

    async def serve(stop: asyncio.Event) -> None:
        pool = await asyncpg.create_pool(url, min_size=1, max_size=20, reset=_no_reset)
        await pool.execute("CREATE TABLE IF NOT EXISTS bench_floor (id bigserial, data jsonb)")
        app = FastAPI()

        @app.get("/healthz")
        @app.get("/readyz")
        async def ready() -> Response:
            return Response(b'{"status":"ok"}', media_type="application/json")

        @app.post("/echo/v1/accounts/{account_id}/deposits")
        async def echo(request: Request, account_id: str) -> Response:
            amount = json.loads(await request.body())["amount"]
            return Response(
                b'{"%s": %d}' % (account_id.encode(), amount), media_type="application/json"
            )

        @app.post("/v1/accounts/{account_id}/deposits")
        async def deposit(request: Request) -> Response:
            data = (await request.body()).decode()
            row = await pool.fetchval(
                "INSERT INTO bench_floor (data) VALUES ($1::jsonb) RETURNING id", data
            )
            return Response(b'{"id": %d}' % row, media_type="application/json")

        try:
            await serve_http(app, HOST, port, stop)
        finally:
            await pool.close()

    run_until_signalled(serve)


async def run_bare(url: str, base: dict[str, Any]) -> list[PhaseResult]:
    """The three reference phases against the bare app, in its own process."""
    port = _free_port()
    command = [sys.executable, "-m", "bench.commands", "--bare-server", url, str(port)]
    bare = subprocess.Popen(command)
    spec = {**base, "port": port, "accounts": SPREAD, "keys": False, "run": "bare"}
    phases = [
        {**spec, "name": "(bare a) GET /healthz", "kind": "healthz"},
        {**spec, "name": "(bare e) POST, JSON in/out, no DB", "kind": "deposit",
         "prefix": "/echo"},
        {**spec, "name": "(floor) POST, one raw INSERT", "kind": "deposit"},
    ]  # fmt: skip
    try:
        await wait_ready(port)
        await asyncio.to_thread(run_client, {**phases[0], "name": "warm", "seconds": 2})
        return [await asyncio.to_thread(run_client, phase, bare.pid) for phase in phases]
    finally:
        bare.send_signal(signal.SIGTERM)
        bare.wait(30)


# --- main -----------------------------------------------------------------------------


def _table(results: list[PhaseResult], warm_c: float, depth: int) -> str:
    lines = [
        f"{'phase':<34} {'requests':>9} {'errors':>7} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8}"
        f" {'server CPU us/req':>18}",
    ]
    for r in results:
        lines.append(
            f"{r.name:<34} {r.requests:>9} {r.errors:>7} {r.rate:>9.1f} {r.p50_ms:>8.2f} "
            f"{r.p99_ms:>8.2f} {r.server_cpu_us:>18.1f}"
        )
    lines.append(
        f"(c) first touch of the 100 cold accounts ({depth:,} events each): {warm_c:.2f} s"
    )
    return "\n".join(lines)


async def _warm(base: dict[str, Any], accounts: list[str]) -> float:
    """One deposit per account, not measured: loads every stream into the server."""
    spec = {**base, "name": "warm", "kind": "deposit", "accounts": accounts, "each": True,
            "run": f"warm-{uuid.uuid4().hex[:6]}", "requests": len(accounts), "seconds": 300,
            "connections": 8}  # fmt: skip
    started = time.perf_counter()
    await asyncio.to_thread(run_client, spec)
    return time.perf_counter() - started


async def _phases(args: argparse.Namespace, url: str, port: int, pid: int) -> None:
    claims = {"sub": "bench", "exp": int(time.time()) + 3600, "scope": "ledger:write"}
    base = {
        "port": port,
        "token": jwt.encode(claims, SECRET, algorithm="HS256"),
        "requests": args.requests,
        "keys": False,
        "seconds": args.seconds,
        "connections": args.connections,
    }
    run = uuid.uuid4().hex[:8]

    async def phase(
        name: str, kind: str, accounts: list[str] | None = None, *, keys: bool = False
    ) -> PhaseResult:
        spec = {**base, "name": name, "kind": kind, "accounts": accounts, "keys": keys,
                "run": f"{run}{name[1:3]}"}  # fmt: skip
        return await asyncio.to_thread(run_client, spec, pid)

    await asyncio.to_thread(run_client, {**base, "name": "warm", "kind": "healthz"})
    a = await phase("(a) GET /healthz", "healthz")
    await _warm(base, SPREAD)
    b = await phase("(b) deposits, 1,000 accounts", "deposit", SPREAD)
    bk = await phase("(bk) the same, Idempotency-Key", "deposit", SPREAD, keys=True)
    warm_c = await _warm(base, DEEP)
    c = await phase("(c) deposits, 100 x 10k-event accts", "deposit", DEEP)
    bare_a, bare_e, floor = await run_bare(url, base)
    print(_table([a, b, bk, c, bare_a, bare_e, floor], warm_c, args.depth))
    report(
        "commands",
        b.rate,
        a.rate,
        "req/s",
        keyed=bk.rate,
        keyed_ratio=round(bk.rate / a.rate, 3),
        deep_accounts=c.rate,
        deep_ratio=round(c.rate / b.rate, 3),
        p50_ms={"a": a.p50_ms, "b": b.p50_ms, "bk": bk.p50_ms, "c": c.p50_ms},
        p99_ms={"a": a.p99_ms, "b": b.p99_ms, "bk": bk.p99_ms, "c": c.p99_ms},
        server_cpu_us={
            "a": a.server_cpu_us,
            "b": b.server_cpu_us,
            "bk": bk.server_cpu_us,
            "c": c.server_cpu_us,
            "bare_a": bare_a.server_cpu_us,
            "bare_e": bare_e.server_cpu_us,
            "floor": floor.server_cpu_us,
        },
        bare_healthz=bare_a.rate,
        bare_echo=bare_e.rate,
        bare_echo_ratio=round(bare_e.rate / bare_a.rate, 3),
        floor=floor.rate,
        floor_ratio=round(floor.rate / bare_a.rate, 3),
        vs_floor=round(b.rate / floor.rate, 3),
        connections=args.connections,
    )


async def main(args: argparse.Namespace) -> None:
    name, url = await create_scratch_database("chronicle_bench_commands")
    server = None
    try:
        await migrate(url, all_migrations())
        filled = await prefill(url, SPREAD, DEEP, args.depth)
        print(f"pre-filled 1,000 + 100 x {args.depth:,} events in {filled:.1f} s", flush=True)
        port = _free_port()
        server = start_server(url, port, args.server_env)
        await wait_ready(port)
        await _phases(args, url, port, server.pid)
    finally:
        if server is not None:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(30)
            except subprocess.TimeoutExpired:
                server.kill()
        await drop_database(name)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--client":
        client_main(sys.argv[2])
        sys.exit(0)
    if len(sys.argv) == 4 and sys.argv[1] == "--bare-server":
        bare_main(sys.argv[2], int(sys.argv[3]))
        sys.exit(0)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=20_000, help="per phase, at most")
    parser.add_argument("--seconds", type=float, default=15.0, help="per phase, at most")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--depth", type=int, default=10_000, help="events per (c) account")
    parser.add_argument(
        "--server-env", action="append", default=[], metavar="NAME=VALUE",
        help="extra environment of the server, e.g. CHRONICLE_TRANSFER_MANAGER=false",
    )  # fmt: skip
    asyncio.run(main(parser.parse_args()))
