"""The keep-alive HTTP client of `chronicle load` (chronicle/load_http.py) against a
loopback server that answers each request with the next scripted response: reuse of
connections, Content-Length and chunked bodies, closing responses, error statuses,
unreadable responses and refused connections."""

from __future__ import annotations

import asyncio
import json
import socket
from collections import deque
from collections.abc import AsyncIterator

import pytest

from chronicle.load_http import HttpError, HttpPool


def respond(status: int, body: object, *, close: bool = False) -> bytes:
    raw = json.dumps(body).encode()
    head = (
        f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {len(raw)}\r\n"
    )
    return (head + ("Connection: close\r\n" if close else "") + "\r\n").encode() + raw


class Script:
    """A server answering request i with ``responses[i]``; it closes a connection after
    a response that says ``Connection: close`` or is not HTTP at all."""

    def __init__(self, *responses: bytes) -> None:
        self.responses = deque(responses)
        self.requests: list[tuple[bytes, bytes]] = []
        """(head, body) of every request, in arrival order."""
        self.connections = 0
        self.url = ""

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while self.responses:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    int(line.split(b":")[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                )
                self.requests.append((head, await reader.readexactly(length)))
                response = self.responses.popleft()
                writer.write(response)
                await writer.drain()
                if b"Connection: close" in response or not response.startswith(b"HTTP/1.1"):
                    break
        except asyncio.IncompleteReadError:
            pass  # the client closed its connection
        finally:
            writer.close()


@pytest.fixture
async def serve() -> AsyncIterator[Script]:
    """A Script to fill before the first request."""
    script = Script()
    server = await asyncio.start_server(script.handle, "127.0.0.1", 0)
    script.url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/api/"
    async with server:
        yield script


async def test_requests_share_a_keep_alive_connection(serve: Script) -> None:
    serve.responses.extend([respond(201, {"position": 1}), respond(201, {"position": 2})])
    pool = HttpPool(serve.url, {"Authorization": "Bearer t"}, size=1)
    first, second = await asyncio.gather(
        pool.post_json("/v1/accounts", {"amount": 1}),
        pool.post_json("/v1/accounts", {"amount": 2}),
    )
    await pool.close()
    assert (first, second) == ((201, {"position": 1}), (201, {"position": 2}))
    assert serve.connections == 1
    head, body = serve.requests[0]
    assert head.startswith(b"POST /api/v1/accounts HTTP/1.1\r\n")
    assert b"\r\nAuthorization: Bearer t\r\n" in head
    assert b"\r\nContent-Type: application/json\r\n" in head
    assert body == b'{"amount":1}'


async def test_a_chunked_body_is_read_whole(serve: Script) -> None:
    serve.responses.append(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b'7\r\n{"posit\r\n6\r\nion": \r\n2\r\n9}\r\n0\r\n\r\n'
    )
    serve.responses.append(respond(200, {"again": True}))
    pool = HttpPool(serve.url, {})
    assert await pool.post_json("/x", {}) == (200, {"position": 9})
    assert await pool.post_json("/x", {}) == (200, {"again": True})
    await pool.close()
    assert serve.connections == 1


async def test_a_closing_response_is_not_reused(serve: Script) -> None:
    serve.responses.extend([respond(200, [1], close=True), respond(200, [2])])
    pool = HttpPool(serve.url, {})
    assert await pool.post_json("/x", {}) == (200, [1])
    assert await pool.post_json("/x", {}) == (200, [2])
    await pool.close()
    assert serve.connections == 2


async def test_an_error_status_raises_unless_unchecked(serve: Script) -> None:
    serve.responses.extend([respond(409, {"title": "conflict"}), respond(409, {"title": "c"})])
    pool = HttpPool(serve.url, {})
    with pytest.raises(HttpError, match="HTTP 409"):
        await pool.post_json("/x", {})
    assert await pool.post_json("/x", {}, check=False) == (409, {"title": "c"})
    await pool.close()


async def test_an_unreadable_response_fails_and_drops_its_connection(serve: Script) -> None:
    serve.responses.extend([b"SPDY/9 what\r\n\r\n", respond(200, {"ok": True})])
    pool = HttpPool(serve.url, {})
    with pytest.raises(HttpError, match="POST /x"):
        await pool.post_json("/x", {})
    assert await pool.post_json("/x", {}) == (200, {"ok": True})
    await pool.close()
    assert serve.connections == 2


async def test_a_refused_connection_is_an_http_error() -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    pool = HttpPool(f"http://127.0.0.1:{port}", {})
    with pytest.raises(HttpError, match="cannot connect"):
        await pool.post_json("/x", {})
    await pool.close()
