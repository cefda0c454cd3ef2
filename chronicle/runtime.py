"""Running processes: signal handling, HTTP servers, and the shared backing services."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import uvicorn
from fastapi import FastAPI

from chronicle.http_protocol import OneWriteHttpProtocol
from chronicle.observability import instrument_app
from eventstore import EventStore

log = logging.getLogger(__name__)


def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop's event loop where it is installed, else asyncio's.

    Chronicle's processes spend much of each request or message in the event loop itself
    (scheduling callbacks, socket reads and writes, timers); uvloop does that work in C.
    """
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on CPython/Unix
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def keep_startup_objects_out_of_collections() -> None:
    """Exempt every object that exists now (modules, classes, settings: never garbage)
    from the cyclic garbage collector for the rest of the process.

    Each full collection scans every tracked object; in a process that has just
    imported FastAPI, pydantic, SQLAlchemy and the OpenTelemetry SDK that is some
    120,000 objects, and a full collection under load took 150-200 ms of CPU, stopping
    the event loop for that long (every request in flight waited). Objects made later
    are collected as usual; reference counting still frees exempt objects.
    """
    gc.collect()
    gc.freeze()


def run_until_signalled(main: Callable[[asyncio.Event], Awaitable[None]]) -> None:
    """Run ``main(stop)`` on a fresh event loop (:func:`new_event_loop`); SIGINT/SIGTERM
    set ``stop``.

    ``main`` must return promptly once ``stop`` is set (drain, close, return).
    """

    async def runner() -> None:
        keep_startup_objects_out_of_collections()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        try:
            await main(stop)
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)

    with asyncio.Runner(loop_factory=new_event_loop) as loop_runner:
        loop_runner.run(runner())


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


@dataclass
class Resources:
    """Backing services opened once and shared by the processes of one OS process.

    ``chronicle serve <process>`` opens its own; ``chronicle up`` opens one set and hands
    it to every process, so the embedded SQLite store and in-process bus are shared.
    ``bus`` is typed by the messaging module (the event bus interface).
    """

    store: EventStore
    bus: Any = None
