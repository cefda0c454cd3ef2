"""`chronicle up`: every process of the system in one OS process.

They share one :class:`~chronicle.runtime.Resources`: one event store and one bus, so
the embedded default (an SQLite file and the in-process bus) works with no
configuration at all, and pointing CHRONICLE_EVENTSTORE_URL / CHRONICLE_BROKER_URL at
PostgreSQL and RabbitMQ runs the same processes against them. Each process listens on
its own default port (CHRONICLE_HTTP_PORT would make them collide, so it is ignored).
With no JWT key configured and CHRONICLE_AUTH unset, it runs without authentication
(the zero-configuration demo; every process binds 127.0.0.1 unless told otherwise) and
says so; `chronicle serve` refuses that.

A process joins by one line in ``PROCESSES``: a module with
``async def serve(stop, resources)``. A module that does not exist in this build is
skipped, so the list can name processes before they land.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import os
from collections.abc import Callable, Coroutine
from contextlib import AsyncExitStack
from dataclasses import dataclass
from types import ModuleType
from typing import Any, cast

import typer

from chronicle.migrations import all_migrations
from chronicle.runtime import Resources
from chronicle.supervise import Runner, run_together
from eventstore import open_event_store
from eventstore.bus import BrokerSettings, open_bus
from eventstore.urls import mask_password

log = logging.getLogger(__name__)

Serve = Callable[[asyncio.Event, Resources], Coroutine[Any, Any, None]]


@dataclass(frozen=True, slots=True)
class Process:
    name: str
    module: str
    port: int
    hint: str = ""


PROCESSES = (
    Process("commands", "chronicle.run_commands", 8000, "POST /v1/accounts, /v1/transfers"),
    Process("relay", "chronicle.run_relay", 8003, "/metrics"),
    Process("projector", "chronicle.run_projector", 8004, "/readyz, /metrics"),
    Process("queries", "chronicle.run_queries", 8001, "GET /v1/accounts, /v1/stats, /docs"),
    Process("bridge", "chronicle.run_bridge", 8002, "dashboard at /, WebSocket at /v1/ws"),
)


def _load(process: Process) -> Serve | None:
    """The process's ``serve``, or None when its module is not part of this build."""
    try:
        module: ModuleType = importlib.import_module(process.module)
    except ModuleNotFoundError as exc:
        if exc.name != process.module:
            raise  # the module exists but something it imports does not: a real error
        return None
    return cast(Serve, module.serve)


def _runner(serve: Serve, resources: Resources) -> Runner:
    return lambda stop: serve(stop, resources)


async def _open(settings: BrokerSettings, stack: AsyncExitStack) -> Resources:
    store = await open_event_store(
        settings.eventstore_url, limits=settings.limits(), pool_size=settings.pool_size
    )
    stack.push_async_callback(store.close)
    # Every component's schema, in the store's own database (`:memory:` included).
    await store.migrate(all_migrations())
    bus = open_bus(
        settings.broker_url,
        settings.topology(),
        connect_timeout=settings.broker_connect_timeout,
    )
    stack.push_async_callback(bus.close)
    return Resources(store=store, bus=bus)


def _announce(settings: BrokerSettings, running: list[Process], missing: list[Process]) -> None:
    host = settings.http_host
    typer.echo(
        f"Chronicle up: store {mask_password(settings.eventstore_url)},"
        f" bus {mask_password(settings.broker_url)}"
    )
    for process in running:
        typer.echo(f"  {process.name:<10} http://{host}:{process.port}  {process.hint}")
    if missing:
        typer.echo(f"  (not in this build: {', '.join(p.name for p in missing)})")
    typer.echo("Ctrl-C stops everything.")


def _zero_configuration() -> None:
    """Adjust the environment for processes sharing one OS process (see module docs)."""
    if os.environ.pop("CHRONICLE_HTTP_PORT", None) is not None:
        log.warning("chronicle up: CHRONICLE_HTTP_PORT ignored; each process uses its own port")
    auth_keys = ("CHRONICLE_AUTH", "CHRONICLE_JWT_SECRET", "CHRONICLE_JWT_JWKS_URL")
    if not any(os.environ.get(key) for key in auth_keys):
        os.environ["CHRONICLE_AUTH"] = "disabled"
        typer.echo("Authentication is off (no CHRONICLE_JWT_SECRET or CHRONICLE_JWT_JWKS_URL).")


async def serve(stop: asyncio.Event) -> None:
    """Run every process of this build until ``stop`` is set; close everything after."""
    _zero_configuration()
    settings = BrokerSettings()
    loaded = [(process, _load(process)) for process in PROCESSES]
    running = [(p, fn) for p, fn in loaded if fn is not None]
    missing = [p for p, fn in loaded if fn is None]
    async with AsyncExitStack() as stack:
        resources = await _open(settings, stack)
        runners = {p.name: _runner(fn, resources) for p, fn in running}
        _announce(settings, [p for p, _ in running], missing)
        await run_together(stop, runners)
    typer.echo("Chronicle stopped.")
