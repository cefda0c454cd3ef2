"""eventstore.web: problem+json, the body size limit, health and metrics."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client import CollectorRegistry
from pydantic import BaseModel

from eventstore.web import (
    BodySizeLimit,
    HttpMetrics,
    ProblemError,
    health_router,
    install_problem_handlers,
    metrics_router,
)


class Body(BaseModel):
    n: int


async def _ok() -> None:
    return None


async def _down() -> None:
    raise ConnectionError("refused")


async def _slow() -> None:
    await asyncio.Event().wait()


def make_app(registry: CollectorRegistry) -> FastAPI:
    app = FastAPI()
    install_problem_handlers(app)

    @app.post("/echo/{item}")
    async def echo(item: int, body: Body) -> dict[str, int]:
        if body.n < 0:
            raise ProblemError(409, "negative", "Negative", "n < 0", headers={"X-A": "1"}, n=1)
        return {"item": item, "n": body.n}

    @app.get("/crash")
    async def crash() -> None:
        raise RuntimeError("boom")

    app.include_router(health_router({"db": _ok}))
    app.include_router(metrics_router(registry))
    app.add_middleware(BodySizeLimit, max_bytes=100)
    app.add_middleware(HttpMetrics, registry=registry)
    return app


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=make_app(CollectorRegistry()), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        yield c


def _problem(response: httpx.Response, status: int, code: str) -> dict[str, object]:
    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, object] = response.json()
    assert body["code"] == code
    assert body["type"] == "about:blank"
    assert body["status"] == status
    return body


async def test_problem_errors_keep_their_code_headers_and_members(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post("/echo/1", json={"n": -1})
    body = _problem(response, 409, "negative")
    assert body["detail"] == "n < 0"
    assert body["n"] == 1
    assert response.headers["x-a"] == "1"


async def test_framework_errors_become_problems(client: httpx.AsyncClient) -> None:
    _problem(await client.get("/nowhere"), 404, "not_found")
    _problem(await client.get("/echo/1"), 405, "method_not_allowed")
    _problem(await client.post("/echo/x", json={"n": 1}), 422, "validation_failed")
    bad = await client.post("/echo/1", content=b"{", headers={"content-type": "application/json"})
    _problem(bad, 400, "malformed_json")
    _problem(await client.get("/crash"), 500, "internal_error")


async def test_body_size_limit(client: httpx.AsyncClient) -> None:
    assert (await client.post("/echo/1", json={"n": 1})).json() == {"item": 1, "n": 1}
    announced = await client.post("/echo/1", content=b"{" + b" " * 200 + b"}")
    assert _problem(announced, 413, "payload_too_large")["max_bytes"] == 100

    async def streamed() -> AsyncIterator[bytes]:
        for _ in range(10):
            yield b" " * 20

    _problem(await client.post("/echo/1", content=streamed()), 413, "payload_too_large")


async def test_health_and_readiness() -> None:
    app = FastAPI()
    install_problem_handlers(app)
    app.include_router(health_router({"db": _ok, "broker": _down, "cache": _slow}, timeout=0.05))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        assert (await client.get("/healthz")).json() == {"status": "ok"}
        body = _problem(await client.get("/readyz"), 503, "not_ready")
        assert body["checks"] == {
            "db": "ok",
            "broker": "error: ConnectionError",
            "cache": "timeout",
        }


async def test_metrics_count_requests_by_route_template(client: httpx.AsyncClient) -> None:
    await client.post("/echo/1", json={"n": 1})
    await client.post("/echo/2", json={"n": 2})
    await client.get("/nowhere")
    text = (await client.get("/metrics")).text
    assert 'http_requests_total{method="POST",route="/echo/{item}",status="200"} 2.0' in text
    assert 'http_requests_total{method="GET",route="unmatched",status="404"} 1.0' in text
    assert "http_request_duration_seconds_bucket" in text


async def test_metrics_label_unknown_methods_as_other(client: httpx.AsyncClient) -> None:
    for method in ("BREW", "WHEN"):
        await client.request(method, "/echo/1")
    text = (await client.get("/metrics")).text
    assert 'http_requests_total{method="_OTHER",route="/echo/{item}",status="405"} 2.0' in text
    assert "BREW" not in text
