"""Auth, bad frames and the HTTP routes of one replica over real sockets (embedded
store and in-process bus): a refused or misbehaving client never disturbs the others."""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import jwt
import pytest
from pydantic import SecretStr
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from eventstore import EventStore, NewEvent, open_event_store
from eventstore.bus import EventBus, open_bus
from eventstore.bus.wire import encode
from ws_bridge.server import Bridge
from ws_bridge.settings import BridgeSettings

SECRET = "integration-secret-of-enough-length"


class Replica:
    def __init__(self, bridge: Bridge, store: EventStore, bus: EventBus) -> None:
        self.bridge, self.store, self.bus = bridge, store, bus
        self.previous = 0

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.bridge.port}/v1/ws"

    async def append(self, stream: str) -> int:
        result = await self.store.append(stream, [NewEvent("MoneyDeposited", {"amount": 1})])
        event = result.events[0]
        await self.bus.publish([encode(event, self.previous)])
        self.previous = event.position
        return event.position


@pytest.fixture
async def replica(sqlite_url: str) -> AsyncIterator[Replica]:
    store = await open_event_store(sqlite_url)
    bus = open_bus("memory://")
    settings = BridgeSettings(
        auth="enabled",
        jwt_secret=SecretStr(SECRET),
        http_port=0,
        bridge_auth_timeout=2,
        bridge_shutdown_grace=3,
    )
    bridge = Bridge(settings, store, bus)
    stop = asyncio.Event()
    task = asyncio.create_task(bridge.run(stop))
    async with asyncio.timeout(10):
        await bridge.listening.wait()
        await bridge.hub.started.wait()
    try:
        yield Replica(bridge, store, bus)
    finally:
        stop.set()
        await task
        await bus.close()
        await store.close()


def token(**claims: Any) -> str:
    return jwt.encode(
        {"sub": "ada", "exp": int(time.time()) + 60, **claims}, SECRET, algorithm="HS256"
    )


async def frames(ws: ClientConnection, count: int) -> list[dict[str, Any]]:
    async with asyncio.timeout(5):
        return [json.loads(await ws.recv()) for _ in range(count)]


async def close_code(ws: ClientConnection) -> int | None:
    """Read until the server closes; its close code (frames before it are dropped)."""
    async with asyncio.timeout(5):
        try:
            while True:
                await ws.recv()
        except ConnectionClosed:
            return ws.close_code


async def test_a_token_in_the_header_admits_the_client(replica: Replica) -> None:
    headers = {"Authorization": f"Bearer {token()}"}
    async with connect(replica.url, additional_headers=headers) as ws:
        await ws.send(json.dumps({"op": "subscribe", "id": "a", "filter": {}}))
        assert (await frames(ws, 1))[0]["op"] == "subscribed"
        position = await replica.append("account-x")
        assert (await frames(ws, 1))[0]["position"] == position


async def test_a_token_in_a_first_auth_frame_admits_the_client(replica: Replica) -> None:
    async with connect(replica.url) as ws:
        await ws.send(json.dumps({"op": "auth", "token": token()}))
        await ws.send(json.dumps({"op": "ping"}))
        assert await frames(ws, 1) == [{"op": "pong"}]


@pytest.mark.parametrize(
    "first",
    [
        None,  # says nothing within the auth timeout
        {"op": "ping"},
        {"op": "auth", "token": "not-a-jwt"},
        {"op": "auth", "token": jwt.encode({"sub": "x", "exp": 1}, SECRET, algorithm="HS256")},
    ],
)
async def test_no_valid_auth_frame_in_time_closes_with_1008(
    replica: Replica, first: dict[str, str] | None
) -> None:
    async with connect(replica.url) as ws:
        if first is not None:
            await ws.send(json.dumps(first))
        assert await close_code(ws) == 1008


async def test_a_bad_header_token_closes_with_1008(replica: Replica) -> None:
    headers = {"Authorization": "Bearer forged"}
    async with connect(replica.url, additional_headers=headers) as ws:
        assert await close_code(ws) == 1008


async def test_a_token_in_the_url_is_ignored(replica: Replica) -> None:
    async with connect(f"{replica.url}?token={token()}") as ws:
        await ws.send(json.dumps({"op": "subscribe", "id": "a", "filter": {}}))
        assert await close_code(ws) == 1008


async def test_claims_limit_what_a_client_may_subscribe_to(replica: Replica) -> None:
    headers = {"Authorization": f"Bearer {token(streams=['account-mine'])}"}
    async with connect(replica.url, additional_headers=headers) as ws:
        await ws.send(json.dumps({"op": "subscribe", "id": "all", "filter": {}}))
        await ws.send(
            json.dumps({"op": "subscribe", "id": "x", "filter": {"streams": ["account-other"]}})
        )
        await ws.send(
            json.dumps({"op": "subscribe", "id": "me", "filter": {"streams": ["account-mine"]}})
        )
        refused_all, refused_other, accepted = await frames(ws, 3)
        assert (refused_all["op"], refused_all["code"], refused_all["id"]) == (
            "error",
            "forbidden",
            "all",
        )
        assert (refused_other["code"], refused_other["id"]) == ("forbidden", "x")
        assert accepted["op"] == "subscribed"
        await replica.append("account-other")
        mine = await replica.append("account-mine")
        event = (await frames(ws, 1))[0]
        assert (event["sub"], event["position"]) == ("me", mine)


async def test_malformed_frames_get_an_error_then_4400(replica: Replica) -> None:
    headers = {"Authorization": f"Bearer {token()}"}
    async with connect(replica.url, additional_headers=headers) as ws:
        await ws.send("{not json")
        error = (await frames(ws, 1))[0]
        assert (error["op"], error["code"]) == ("error", "bad_frame")
        await ws.send(json.dumps({"op": "subscribe", "id": "a", "filter": {"streams": "x"}}))
        assert await close_code(ws) == 4400
    # The replica is unharmed: a new client is served.
    async with connect(replica.url, additional_headers=headers) as ws:
        await ws.send(json.dumps({"op": "ping"}))
        assert await frames(ws, 1) == [{"op": "pong"}]


async def test_subscription_bookkeeping_errors(replica: Replica) -> None:
    headers = {"Authorization": f"Bearer {token()}"}
    async with connect(replica.url, additional_headers=headers) as ws:
        await ws.send(json.dumps({"op": "subscribe", "id": "a"}))
        await ws.send(json.dumps({"op": "subscribe", "id": "a"}))
        await ws.send(json.dumps({"op": "unsubscribe", "id": "b"}))
        await ws.send(json.dumps({"op": "unsubscribe", "id": "a"}))
        replies = await frames(ws, 4)
        assert [r["op"] for r in replies] == ["subscribed", "error", "error", "unsubscribed"]
        assert [replies[1]["code"], replies[2]["code"]] == ["duplicate_id", "unknown_subscription"]


async def test_health_readiness_metrics_and_the_dashboard(replica: Replica) -> None:
    base = f"http://127.0.0.1:{replica.bridge.port}"
    async with httpx.AsyncClient(base_url=base) as http:
        assert (await http.get("/healthz")).json() == {"status": "ok"}
        ready = await http.get("/readyz")
        assert ready.status_code == 200
        assert ready.json()["checks"] == {"eventstore": "ok", "broker": "ok", "feed": "ok"}
        assert "bridge_connections" in (await http.get("/metrics")).text
        page = await http.get("/")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        assert "app.js" in page.text
        assert (await http.get("/app.js")).status_code == 200
        assert (await http.get("/config.json")).json()["ws_path"] == "/v1/ws"
        assert (await http.get("/../pyproject.toml")).status_code == 404
        assert (await http.get("/nothing-here")).status_code == 404


async def test_stopping_closes_every_client_with_1012(sqlite_url: str) -> None:
    store = await open_event_store(sqlite_url)
    bus = open_bus("memory://")
    bridge = Bridge(BridgeSettings(auth="disabled", http_port=0), store, bus)
    stop = asyncio.Event()
    task = asyncio.create_task(bridge.run(stop))
    await bridge.listening.wait()
    url = f"ws://127.0.0.1:{bridge.port}/v1/ws"
    clients = [await connect(url) for _ in range(5)]
    for ws in clients:
        await ws.send(json.dumps({"op": "subscribe", "id": "a"}))
        await frames(ws, 1)
    started = time.perf_counter()
    stop.set()
    codes = [await close_code(ws) for ws in clients]
    await task
    assert codes == [1012] * 5
    assert time.perf_counter() - started < bridge.settings.bridge_shutdown_grace
    await bus.close()
    await store.close()


async def test_a_client_that_stops_answering_pings_is_dropped(sqlite_url: str) -> None:
    store = await open_event_store(sqlite_url)
    bus = open_bus("memory://")
    settings = BridgeSettings(
        auth="disabled",
        http_port=0,
        bridge_ping_interval=0.2,
        bridge_ping_timeout=0.3,
        bridge_close_timeout=0.5,
    )
    bridge = Bridge(settings, store, bus)
    stop = asyncio.Event()
    task = asyncio.create_task(bridge.run(stop))
    await bridge.listening.wait()
    # A bare TCP client: it completes the upgrade, then never reads nor answers a ping.
    reader, writer = await asyncio.open_connection("127.0.0.1", bridge.port)
    writer.write(
        b"GET /v1/ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
        b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        b"Sec-WebSocket-Version: 13\r\n\r\n"
    )
    assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 101")
    gauge = bridge.metrics.connections
    async with asyncio.timeout(10):
        while await reader.read(4096):  # the server closes once the pong is overdue
            pass
        while gauge._value.get() != 0:
            await asyncio.sleep(0.01)
    writer.close()
    stop.set()
    await task
    await bus.close()
    await store.close()


async def test_a_connection_ends_with_1008_when_its_token_expires(sqlite_url: str) -> None:
    store = await open_event_store(sqlite_url)
    bus = open_bus("memory://")
    settings = BridgeSettings(
        auth="enabled", jwt_secret=SecretStr(SECRET), jwt_leeway=0, http_port=0
    )
    bridge = Bridge(settings, store, bus)
    stop = asyncio.Event()
    task = asyncio.create_task(bridge.run(stop))
    await bridge.listening.wait()
    headers = {"Authorization": f"Bearer {token(exp=math.ceil(time.time()) + 3)}"}
    async with connect(f"ws://127.0.0.1:{bridge.port}/v1/ws", additional_headers=headers) as ws:
        await ws.send(json.dumps({"op": "ping"}))
        assert await frames(ws, 1) == [{"op": "pong"}]
        assert await close_code(ws) == 1008
    stop.set()
    await task
    await bus.close()
    await store.close()
