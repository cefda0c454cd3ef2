"""The HTTP server of every Chronicle process: uvicorn, each response in one write.

uvicorn writes a response's status line and headers as soon as the app starts the
response, and the body when it sends it: two ``send()`` system calls, two TCP segments
(``TCP_NODELAY``), and two wake-ups of the client, for every request. On loopback and
small responses those calls are a large share of a request's cost. Here the writes of a
response are gathered and go out together when the response completes; anything else
(a streamed body, ``100 Continue``) goes out at the end of the event loop iteration that
wrote it, so nothing waits for more than one iteration.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import uvicorn
from fastapi import FastAPI
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from chronicle.observability import instrument_app


class _GatheringTransport(asyncio.Transport):
    """A socket transport whose writes are held until :meth:`flush` (or the end of the
    loop iteration). Everything else goes straight to the real transport."""

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self._transport = transport
        self._loop = loop
        self._held: list[bytes] = []

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not self._held:
            self._loop.call_soon(self.flush)
        self._held.append(bytes(data))

    def flush(self) -> None:
        """Send what is held, in one write."""
        if not self._held:
            return
        data = self._held[0] if len(self._held) == 1 else b"".join(self._held)
        self._held = []
        if not self._transport.is_closing():
            self._transport.write(data)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def abort(self) -> None:
        self._held = []
        self._transport.abort()

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._transport.get_extra_info(name, default)

    def pause_reading(self) -> None:
        self._transport.pause_reading()

    def resume_reading(self) -> None:
        self._transport.resume_reading()

    def is_reading(self) -> bool:
        return self._transport.is_reading()

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._transport.set_protocol(protocol)

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._transport.get_protocol()

    def get_write_buffer_size(self) -> int:
        return self._transport.get_write_buffer_size() + sum(map(len, self._held))

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self._transport.set_write_buffer_limits(high, low)


class OneWriteHttpProtocol(HttpToolsProtocol):
    """``uvicorn.Config(http=OneWriteHttpProtocol)``: httptools, one write per response."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(_GatheringTransport(transport, asyncio.get_running_loop()))

    def on_response_complete(self) -> None:
        # Called right after the last body write of a response: send it now.
        transport = self.transport
        if isinstance(transport, _GatheringTransport):
            transport.flush()
        super().on_response_complete()


class _Server(uvicorn.Server):
    """uvicorn without its own signal handlers: the process's stop event rules."""

    @contextlib.contextmanager
    def capture_signals(self) -> Any:
        yield


async def serve_http(app: Any, host: str, port: int, stop: asyncio.Event) -> None:
    """Serve an ASGI app until ``stop`` is set, then shut down gracefully (a FastAPI
    app is instrumented first: correlation ids in the logs, and spans when tracing)."""
    if isinstance(app, FastAPI):
        instrument_app(app)
    # Keep idle connections longer than clients and proxies do (httpx and many load
    # balancers drop theirs after 5-60 s): when the server closes first, a client can
    # send its next request on a connection that is closing and get a reset.
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_config=None,
        lifespan="on",
        timeout_keep_alive=75,
        http=OneWriteHttpProtocol,
    )
    server = _Server(config)
    task = asyncio.create_task(server.serve())
    stopper = asyncio.create_task(stop.wait())
    done, _ = await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
    server.should_exit = True
    stopper.cancel()
    await task
    if not server.started and task in done:
        raise RuntimeError(f"HTTP server on {host}:{port} failed to start")
