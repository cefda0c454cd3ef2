"""The command API's app factory. Nothing connects at import or at creation: the
lifespan opens the write side (store, tables, background tasks) and closes it."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from commands.api.auth import Authenticator
from commands.api.problems import install_command_problems
from commands.api.routes import router
from commands.settings import CommandsSettings
from commands.write_side import WriteSide, open_write_side
from eventstore import EventStore
from eventstore.metrics import StoreMetricsView
from eventstore.web import (
    NO_NATIVE_TELEMETRY,
    BodySizeLimit,
    HttpMetrics,
    health_router,
    install_problem_handlers,
    metrics_router,
)

DESCRIPTION = """\
The write side of the Chronicle bank ledger: every route decides one command and appends
its events. Errors are RFC 9457 `application/problem+json` with a stable `code`.

* `Idempotency-Key`: the same key and body return the first response again, writing
  nothing; the same key with another body is 422 `idempotency_key_reused`.
* `If-Match: "<version>"`: the exact stream version expected; otherwise 412 with
  `current_version`. Success answers `ETag: "<version>"`.
* `position` in every success is the consistency token for reads.
"""


def create_app(
    settings: CommandsSettings,
    *,
    store: EventStore | None = None,
    registry: CollectorRegistry | None = None,
) -> FastAPI:
    """The command API. ``store`` given: used and left open; otherwise opened from
    settings in the lifespan. Raises ConfigurationError when auth has no key and is not
    disabled."""
    settings.check_auth()
    registry = registry or CollectorRegistry()
    app = FastAPI(
        title="Chronicle commands",
        version="1",
        description=DESCRIPTION,
        lifespan=functools.partial(_lifespan, settings=settings, store=store, registry=registry),
        # A body without Content-Type is read as JSON (curl-friendly); bad JSON is 400.
        strict_content_type=False,
        telemetry=NO_NATIVE_TELEMETRY,
    )
    app.state.auth = Authenticator(settings)
    app.openapi = functools.partial(_openapi, app)  # type: ignore[method-assign]
    install_problem_handlers(app)
    install_command_problems(app)
    app.include_router(router)
    checks = {"eventstore": lambda: _side(app).ping(), "transfer_manager": lambda: _ready(app)}
    app.include_router(health_router(checks))
    app.include_router(metrics_router(registry))
    registry.register(
        StoreMetricsView(lambda: getattr(getattr(app.state, "side", None), "store", None))
    )
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(HttpMetrics, registry=registry)
    return app


@asynccontextmanager
async def _lifespan(
    app: FastAPI,
    *,
    settings: CommandsSettings,
    store: EventStore | None,
    registry: CollectorRegistry,
) -> AsyncIterator[None]:
    """Open the write side for the app's lifetime (``app.state.side``)."""
    async with open_write_side(settings, store, registry) as side:
        app.state.side = side
        try:
            yield
        finally:
            del app.state.side


def _openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's schema, plus the bearer scheme the routes check themselves."""
    if app.openapi_schema is not None:
        return app.openapi_schema
    schema = FastAPI.openapi(app)
    schemes = schema.setdefault("components", {}).setdefault("securitySchemes", {})
    schemes["HTTPBearer"] = {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
    return schema


def _side(app: FastAPI) -> WriteSide:
    side: WriteSide | None = getattr(app.state, "side", None)
    if side is None:
        raise RuntimeError("the write side is not open")
    return side


async def _ready(app: FastAPI) -> None:
    """The transfer manager's task is alive. A manager failing on a step is not a reason
    to stop serving commands here; the alert ChronicleTransferManagerStuck reports it."""
    side = _side(app)
    for task in side.tasks:
        if task.get_name() == "transfer-manager" and task.done():
            raise RuntimeError("the transfer manager stopped")
