"""The projector's small HTTP app: ``/healthz``, ``/readyz`` and ``/metrics``.

Kept apart from :mod:`projections.projector` so that what only builds read models (a
replay, the relay's list of queues) does not load the web stack.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping

from fastapi import FastAPI
from starlette.responses import Response

from eventstore.web import (
    NO_NATIVE_TELEMETRY,
    ReadinessCheck,
    install_problem_handlers,
    metrics_router,
    problem_response,
)
from projections.projector import Projector


def projector_app(projector: Projector, checks: Mapping[str, ReadinessCheck]) -> FastAPI:
    """/healthz, /metrics, and /readyz: 200 when every dependency answers and no
    projection is halted; 503 ``not_ready`` otherwise, with each projection's state,
    checkpoint and reason (the poison event and its error for a halted one)."""
    app = FastAPI(
        title="Chronicle projector",
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
        telemetry=NO_NATIVE_TELEMETRY,
    )
    install_problem_handlers(app)
    app.include_router(metrics_router(projector.metrics.registry))

    @app.get("/healthz")
    async def healthz() -> Response:
        return Response(b'{"status":"ok"}', media_type="application/json")

    @app.get("/readyz")
    async def readyz() -> Response:
        results = await asyncio.gather(*(_check(check, 2.0) for check in checks.values()))
        report = dict(zip(checks, results, strict=True))
        projections = projector.report()
        halted = [name for name, p in projections.items() if p["state"] == "halted"]
        if all(r == "ok" for r in report.values()) and not halted:
            body = {"status": "ready", "checks": report, "projections": projections}
            return Response(json.dumps(body).encode(), media_type="application/json")
        detail = f"halted: {', '.join(halted)}" if halted else "a dependency is unavailable"
        return problem_response(
            503, "not_ready", "Not ready", detail, checks=report, projections=projections
        )

    return app


async def _check(check: ReadinessCheck, seconds: float) -> str:
    try:
        async with asyncio.timeout(seconds):
            await check()
    except TimeoutError:
        return "timeout"
    except Exception as exc:  # a readiness probe reports any failure, it never raises
        return f"error: {type(exc).__name__}: {exc}"[:300]
    return "ok"
