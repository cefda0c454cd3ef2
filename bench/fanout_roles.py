"""The processes of the fan-out benchmark besides the orchestrator (bench/fanout.py):
the WebSocket clients and the raw `websockets` baseline server, each run as
``python -m bench.fanout_roles --role …`` so that they get a CPU of their own.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import resource
import socket
import sys
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection, broadcast, serve

from eventstore.model import RecordedEvent


def raise_nofile() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def sample_event(position: int) -> RecordedEvent:
    return RecordedEvent(
        event_id=uuid.uuid4(),
        stream_id=f"account-bench-{position % 50}",
        version=position,
        position=position,
        type="MoneyDeposited",
        data={"account_id": f"bench-{position % 50}", "amount": 1250},
        metadata={"actor": "bench", "correlation_id": str(uuid.uuid4())},
        recorded_at=datetime.now(UTC),
    )


def event_frame(position: int) -> str:
    """What a bridge client receives for one event: the baseline sends the same size."""
    event = sample_event(position)
    return json.dumps(
        {
            "op": "event",
            "sub": "b",
            "position": position,
            "stream_id": event.stream_id,
            "version": event.version,
            "type": event.type,
            "data": event.data,
            "metadata": event.metadata,
            "recorded_at": event.recorded_at.isoformat(),
        },
        separators=(",", ":"),
    )


# -- the client process -------------------------------------------------------------


async def client_role(
    url: str, count: int, expect: int, subscribe: bool, hold: bool, measure_lag: bool = False
) -> None:
    """Open ``count`` connections; print "ready"; print the time each got ``expect``
    events; or, with ``hold``, keep them open until stdin closes."""
    raise_nofile()
    done: list[float] = []
    all_done = asyncio.Event()
    gate = asyncio.Semaphore(200)
    connections = []

    async def open_one(i: int) -> Any:
        async with gate:
            ws = await connect(url, compression=None, max_queue=None, open_timeout=60)
            if subscribe:
                sub = {"op": "subscribe", "id": "b", "filter": {"streams": [f"s-{i}"]}}
                if not hold:
                    sub["filter"] = {}
                await ws.send(json.dumps(sub))
                await ws.recv()
            return ws

    lags: list[float] = []

    async def receive(ws: Any) -> None:
        seen = 0
        async for message in ws:
            seen += 1
            if measure_lag:
                recorded = datetime.fromisoformat(json.loads(message)["recorded_at"])
                lags.append(time.time() - recorded.timestamp())
            if seen == expect:
                done.append(time.time())
                if len(done) == count:
                    all_done.set()
                return

    connections = await asyncio.gather(*(open_one(i) for i in range(count)))
    print("ready", flush=True)
    if hold:
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    else:
        tasks = [asyncio.create_task(receive(ws)) for ws in connections]
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(all_done.wait(), 120)
        lags.sort()
        report = {"done": len(done), "last": max(done) if done else None}
        if lags:
            report["lag_p50"] = lags[len(lags) // 2]
            report["lag_p99"] = lags[int(len(lags) * 0.99) - 1]
        print(json.dumps(report), flush=True)
        for task in tasks:
            task.cancel()
    for ws in connections:
        ws.transport.abort()


# -- the raw baseline server process ------------------------------------------------


async def raw_server_role(port: int, clients: int, events: int) -> None:
    """Accept ``clients`` connections; on a line on stdin, broadcast ``events`` frames."""
    raise_nofile()
    connected: set[ServerConnection] = set()

    async def handler(ws: ServerConnection) -> None:
        connected.add(ws)
        try:
            await ws.wait_closed()
        finally:
            connected.discard(ws)

    frames = [event_frame(p) for p in range(1, events + 1)]
    async with serve(handler, "127.0.0.1", port, compression=None, max_queue=16):
        print("listening", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        for frame in frames:
            broadcast(connected, frame)
            await asyncio.sleep(0)  # let the transports flush, as a server must
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--role", choices=["clients", "raw-server"], required=True)
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--events", type=int, default=200)
    parser.add_argument("--url", default="")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--subscribe", action="store_true")
    parser.add_argument("--hold", action="store_true")
    parser.add_argument("--lags", action="store_true")
    args = parser.parse_args()
    if args.role == "clients":
        asyncio.run(
            client_role(args.url, args.clients, args.events, args.subscribe, args.hold, args.lags)
        )
    else:
        asyncio.run(raw_server_role(args.port, args.clients, args.events))


if __name__ == "__main__":
    cli()
