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
    ReadinessCheck,
    operations_app,
    problem_response,
    run_check,
)
from projections.projector import Projector


def projector_app(projector: Projector, checks: Mapping[str, ReadinessCheck]) -> FastAPI:
    """/healthz, /metrics, and /readyz: 200 when every dependency answers and no
    projection is halted; 503 ``not_ready`` otherwise, with each projection's state,
    checkpoint and reason (the poison event and its error for a halted one)."""
    app = operations_app("Chronicle projector", projector.metrics.registry)

    @app.get("/healthz")
    async def healthz() -> Response:
        return Response(b'{"status":"ok"}', media_type="application/json")

    @app.get("/readyz")
    async def readyz() -> Response:
        results = await asyncio.gather(
            *(run_check(check, 2.0, with_message=True) for check in checks.values())
        )
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
