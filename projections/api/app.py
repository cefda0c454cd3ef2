"""The query API's app factory: read models and the raw log over HTTP (port 8001).

The read database engine and the event store are opened in the lifespan (or handed in
by ``chronicle up`` and tests, and then left open).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager

from fastapi import FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from prometheus_client import CollectorRegistry
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.responses import Response

from eventstore import EventStore, StoreUnavailable, open_event_store
from eventstore.web import (
    NO_NATIVE_TELEMETRY,
    HttpMetrics,
    ReadinessCheck,
    health_router,
    install_problem_handlers,
    metrics_router,
    problem_response,
)
from projections.api.readers import Reader
from projections.api.routes import POSITION_HEADER, STALE_HEADER, router
from projections.apply import is_unavailable
from projections.db import open_engine
from projections.settings import QueriesSettings


def create_app(
    settings: QueriesSettings | None = None,
    *,
    engine: AsyncEngine | None = None,
    store: EventStore | None = None,
    memory_key: str = "default",
) -> FastAPI:
    """The query API. Without ``engine``/``store`` they are opened from ``settings``
    when the app starts and closed when it stops."""
    settings = settings or QueriesSettings()
    registry = CollectorRegistry()
    app = FastAPI(
        title="Chronicle queries",
        version="1",
        summary="Read models of the bank ledger and the raw event log",
        lifespan=_lifespan(settings, engine, store, memory_key),
        telemetry=NO_NATIVE_TELEMETRY,
    )
    install_problem_handlers(app)
    app.add_exception_handler(DBAPIError, _unavailable)
    app.add_exception_handler(StoreUnavailable, _unavailable)
    # asyncpg raises the socket's own error when it cannot connect at all.
    app.add_exception_handler(OSError, _unavailable)
    app.add_middleware(HttpMetrics, registry=registry)
    app.add_middleware(
        CORSMiddleware,
        allow_origins=settings.origins(),
        allow_methods=["GET"],
        expose_headers=[POSITION_HEADER, STALE_HEADER],
    )
    app.include_router(router)
    app.include_router(health_router({"read_database": _ping(app), "eventstore": _store(app)}))
    app.include_router(metrics_router(registry))
    return app


def _lifespan(
    settings: QueriesSettings,
    engine: AsyncEngine | None,
    store: EventStore | None,
    memory_key: str,
) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    """Open what was not handed in; close only that."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as stack:
            read = engine
            if read is None:
                read = open_engine(
                    settings.read_url,
                    writer=False,
                    pool_size=settings.read_pool_size,
                    memory_key=memory_key,
                    statement_cache=False,
                )
                stack.push_async_callback(read.dispose)
            log_store = store
            if log_store is None:
                log_store = await open_event_store(
                    settings.eventstore_url, limits=settings.limits(), pool_size=5
                )
                stack.push_async_callback(log_store.close)
            app.state.reader = Reader(read)
            app.state.store = log_store
            app.state.min_position_timeout = settings.min_position_timeout
            yield

    return lifespan


async def _unavailable(_: Request, exc: Exception) -> Response:
    # Only connection-level failures reach here as 503; anything else is a bug (500).
    if isinstance(exc, DBAPIError) and not is_unavailable(exc):
        raise exc
    return problem_response(
        503, "read_model_unavailable", "The read database or the log is unavailable"
    )


def _ping(app: FastAPI) -> ReadinessCheck:
    async def check() -> None:
        reader: Reader = app.state.reader
        async with reader.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    return check


def _store(app: FastAPI) -> ReadinessCheck:
    async def check() -> None:
        store: EventStore = app.state.store
        await store.ping()

    return check
