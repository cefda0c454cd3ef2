"""What every process runs on (chronicle.runtime): uvloop, startup objects kept out of
garbage collections, and the HTTP server with one write per response
(chronicle.http_protocol), over real sockets on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import socket
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI
from starlette.responses import Response, StreamingResponse

from chronicle.http_server import serve_http
from chronicle.runtime import keep_startup_objects_out_of_collections, new_event_loop

BIG = b"x" * (3 * 1024 * 1024)


def _app() -> FastAPI:
    app = FastAPI()

    @app.get("/small")
    async def small() -> Response:
        return Response(b'{"ok":true}', media_type="application/json")

    @app.get("/big")
    async def big() -> Response:
        return Response(BIG, media_type="application/octet-stream")

    @app.get("/stream")
    async def stream() -> StreamingResponse:
        async def chunks() -> AsyncIterator[bytes]:
            for index in range(5):
                await asyncio.sleep(0.01)
                yield f"chunk {index}\n".encode()

        return StreamingResponse(chunks(), media_type="text/plain")

    @app.post("/echo")
    async def echo(body: dict[str, int]) -> dict[str, int]:
        return body

    return app


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.asynccontextmanager
async def _server() -> AsyncIterator[str]:
    port, stop = _free_port(), asyncio.Event()
    task = asyncio.create_task(serve_http(_app(), "127.0.0.1", port, stop))
    url = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=url, timeout=5) as client:
            for _ in range(100):
                with contextlib.suppress(httpx.TransportError):
                    await client.get("/small")
                    break
                await asyncio.sleep(0.05)
        yield url
    finally:
        stop.set()
        await task


async def test_responses_arrive_whole_on_kept_alive_connections() -> None:
    async with _server() as url, httpx.AsyncClient(base_url=url, timeout=5) as client:
        for _ in range(3):
            small = await client.get("/small")
            assert small.status_code == 200
            assert small.json() == {"ok": True}
            assert small.headers["content-length"] == "11"
        big = await client.get("/big")
        assert big.content == BIG
        echoed = await client.post("/echo", json={"amount": 7})
        assert echoed.json() == {"amount": 7}
        streamed = await client.get("/stream")
        assert streamed.text == "".join(f"chunk {index}\n" for index in range(5))
        head = await client.head("/small")
        assert head.status_code in (200, 405)
        assert head.content == b""


async def test_pipelined_requests_are_answered_in_order() -> None:
    async with _server() as url:
        port = int(url.rsplit(":", 1)[1])
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        request = b"GET /small HTTP/1.1\r\nHost: x\r\n\r\n"
        writer.write(request * 3 + b"GET /small HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = await asyncio.wait_for(reader.read(-1), 5)
        writer.close()
        assert data.count(b"HTTP/1.1 200 OK") == 4
        assert data.count(b'{"ok":true}') == 4


async def test_a_malformed_request_gets_400_then_the_connection_closes() -> None:
    async with _server() as url:
        port = int(url.rsplit(":", 1)[1])
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"NOT AN HTTP REQUEST\r\n\r\n")
        data = await asyncio.wait_for(reader.read(-1), 5)
        writer.close()
        assert data.startswith(b"HTTP/1.1 400")


def test_processes_run_on_uvloop() -> None:
    import uvloop

    loop = new_event_loop()
    try:
        assert isinstance(loop, uvloop.Loop)
    finally:
        loop.close()


@pytest.mark.parametrize("path", ["/small", "/big"])
async def test_many_concurrent_clients(path: str) -> None:
    async with _server() as url, httpx.AsyncClient(base_url=url, timeout=10) as client:
        replies = await asyncio.gather(*(client.get(path) for _ in range(20)))
        assert all(reply.status_code == 200 for reply in replies)
        expected = BIG if path == "/big" else b'{"ok":true}'
        assert all(reply.content == expected for reply in replies)


def test_startup_objects_are_kept_out_of_collections() -> None:
    scanned_before = len(gc.get_objects())
    keep_startup_objects_out_of_collections()
    try:
        assert gc.get_freeze_count() > 10_000
        # What a collection scans now: only what was made since.
        assert len(gc.get_objects()) < scanned_before / 10
    finally:
        gc.unfreeze()
