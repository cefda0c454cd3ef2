"""The listening WebSocket client of `chronicle load` (chronicle/load_ws.py) against a
real `websockets` server on loopback: handshake, masked frames out, every payload
length class and fragmented messages in, pings answered, a close from either side."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from websockets.asyncio.server import ServerConnection, serve

from chronicle.load_ws import ListeningSocket, WebSocketError

SIZES = (0, 125, 126, 65_535, 65_536, 200_000)
"""Around each boundary of the 7-bit, 16-bit and 64-bit payload lengths."""


class Server:
    def __init__(self) -> None:
        self.received: list[str] = []
        self.pong = asyncio.Event()
        self.close_code: int | None = None
        self.closed = asyncio.Event()
        self.port = 0

    async def handler(self, ws: ServerConnection) -> None:
        self.received.append(str(await ws.recv()))
        for size in SIZES:
            await ws.send("x" * size)
        await ws.send(["frag", "mented"])
        pong = await ws.ping(b"are you there")
        await pong
        self.pong.set()
        await ws.send(json.dumps({"op": "event", "position": 7}))
        await ws.wait_closed()
        self.close_code = ws.close_code
        self.closed.set()


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    state = Server()
    async with serve(state.handler, "127.0.0.1", 0, compression=None) as running:
        state.port = next(iter(running.sockets)).getsockname()[1]
        yield state


Handler = Callable[[ServerConnection], Awaitable[None]]


@pytest.fixture
async def serving() -> AsyncIterator[Callable[[Handler], Awaitable[str]]]:
    """Start a server running a given handler; returns its ws:// URL."""
    async with contextlib.AsyncExitStack() as stack:

        async def start(handler: Handler) -> str:
            running = await stack.enter_async_context(
                serve(handler, "127.0.0.1", 0, compression=None)
            )
            return f"ws://127.0.0.1:{next(iter(running.sockets)).getsockname()[1]}/v1/ws"

        yield start


async def read(socket: ListeningSocket, count: int) -> list[bytes]:
    while len(socket.messages) < count:
        assert await socket.next_message(len(socket.messages)), "closed early"
    return [payload for _, _, payload in socket.messages]


async def test_every_frame_arrives_whole_and_in_order(server: Server) -> None:
    socket = await ListeningSocket.open(f"ws://127.0.0.1:{server.port}/v1/ws")
    socket.send_text(json.dumps({"op": "subscribe", "id": "s"}))
    payloads = await read(socket, len(SIZES) + 2)
    assert server.received == ['{"op": "subscribe", "id": "s"}']
    assert payloads[: len(SIZES)] == [b"x" * size for size in SIZES]
    assert payloads[len(SIZES)] == b"fragmented"
    assert json.loads(payloads[-1]) == {"op": "event", "position": 7}
    assert server.pong.is_set()
    stamps = [received for received, _, _ in socket.messages]
    assert stamps == sorted(stamps)
    await socket.close()
    async with asyncio.timeout(5):
        await server.closed.wait()
    assert server.close_code == 1000


async def test_a_refused_upgrade_is_an_error() -> None:
    async def not_websocket(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()
        writer.close()

    plain = await asyncio.start_server(not_websocket, "127.0.0.1", 0)
    port = plain.sockets[0].getsockname()[1]
    async with plain:
        with pytest.raises(WebSocketError, match="403"):
            await ListeningSocket.open(f"ws://127.0.0.1:{port}/v1/ws")


async def test_a_ping_is_answered_with_its_payload(
    serving: Callable[[Handler], Awaitable[str]],
) -> None:
    answered = asyncio.Event()

    async def pinging(ws: ServerConnection) -> None:
        # The pong waiter resolves only on a pong carrying this exact payload.
        pong = await ws.ping(b"\x00ping\xff")
        await pong
        answered.set()
        await ws.send("after the pong")
        await ws.wait_closed()

    socket = await ListeningSocket.open(await serving(pinging))
    assert await read(socket, 1) == [b"after the pong"]
    assert answered.is_set()
    await socket.close()


async def test_a_close_from_the_server_is_echoed_and_ends_the_socket(
    serving: Callable[[Handler], Awaitable[str]],
) -> None:
    codes: list[int | None] = []
    done = asyncio.Event()

    async def closing(ws: ServerConnection) -> None:
        await ws.send("last words")
        await ws.close(1001, "going away")
        codes.append(ws.close_code)
        done.set()

    socket = await ListeningSocket.open(await serving(closing))
    assert await read(socket, 1) == [b"last words"]
    assert not await socket.next_message(1)
    async with asyncio.timeout(5):
        await done.wait()
    assert codes == [1001]  # the close code the client sent back
    await socket.close()  # nothing left to do, returns at once


async def test_a_dropped_connection_ends_the_socket(
    serving: Callable[[Handler], Awaitable[str]],
) -> None:
    async def dropping(ws: ServerConnection) -> None:
        await ws.send("before the drop")
        ws.transport.abort()

    socket = await ListeningSocket.open(await serving(dropping))
    assert not await socket.next_message(1)
    assert [payload for _, _, payload in socket.messages] == [b"before the drop"]
    await socket.close()
    with pytest.raises(WebSocketError):
        socket.send_text("too late")


async def test_a_fragmented_message_is_stamped_when_its_last_fragment_arrives(
    serving: Callable[[Handler], Awaitable[str]],
) -> None:
    release = asyncio.Event()

    async def fragments() -> AsyncIterator[str]:
        yield "first half, "
        await release.wait()
        yield "second half"

    async def fragmenting(ws: ServerConnection) -> None:
        await ws.send(fragments())
        await ws.wait_closed()

    socket = await ListeningSocket.open(await serving(fragmenting))
    before_last = time.perf_counter()
    release.set()
    assert await read(socket, 1) == [b"first half, second half"]
    assert socket.messages[0][0] >= before_last
    await socket.close()
