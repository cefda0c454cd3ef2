"""Running processes: the event loop, signal handling, and the shared backing services
(the HTTP server is in :mod:`chronicle.http_server`)."""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

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


@dataclass
class Resources:
    """Backing services opened once and shared by the processes of one OS process.

    ``chronicle serve <process>`` opens its own; ``chronicle up`` opens one set and hands
    it to every process, so the embedded SQLite store and in-process bus are shared.
    ``bus`` is typed by the messaging module (the event bus interface).
    """

    store: EventStore
    bus: Any = None
