"""HTTP plumbing every Chronicle HTTP process shares; domain-agnostic.

* Errors: RFC 9457 ``application/problem+json`` bodies, each with a stable ``code``.
  Raise :class:`ProblemError` anywhere (it is a Starlette ``HTTPException``, so it also
  passes through request-body parsing untouched); :func:`install_problem_handlers`
  renders it, framework errors (404, 405, request validation) and crashes (500) alike.
* :class:`BodySizeLimit`: an ASGI middleware answering 413 ``payload_too_large`` for a
  request body over the limit, whether announced by Content-Length or streamed.
* :func:`health_router`: ``GET /healthz`` (alive; touches nothing) and ``GET /readyz``
  (runs the given async checks; 503 ``not_ready`` when one fails or times out).
* :func:`metrics_router` and :class:`HttpMetrics`: ``GET /metrics`` in the Prometheus
  text format, and request counts/latencies labelled by route template.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.telemetry import TelemetryConfig
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, ConfigDict
from starlette.exceptions import HTTPException
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

PROBLEM_JSON = "application/problem+json"

NO_NATIVE_TELEMETRY: TelemetryConfig = {"tracing": False, "metrics": False, "logs": False}
"""``FastAPI(telemetry=...)`` for every Chronicle app: spans come from the OpenTelemetry
instrumentation when tracing is on (chronicle.observability), metrics from Prometheus.
FastAPI's own telemetry would look the global providers up on every request, and add a
second server span when tracing is on."""

ReadinessCheck = Callable[[], Awaitable[None]]
"""An async check that returns when a dependency is reachable and raises otherwise."""

_STATUS_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_failed",
    429: "too_many_requests",
    500: "internal_error",
    503: "service_unavailable",
}


class Problem(BaseModel):
    """The RFC 9457 problem document (for OpenAPI); extra members are allowed."""

    model_config = ConfigDict(extra="allow")

    type: str = "about:blank"
    title: str
    status: int
    code: str
    detail: str | None = None


class ProblemError(HTTPException):
    """An error that becomes a problem+json response with a stable ``code``.

    ``extra`` members are added to the body (e.g. ``current_version``).
    """

    def __init__(
        self,
        status: int,
        code: str,
        title: str,
        detail: str | None = None,
        *,
        headers: Mapping[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(status_code=status, detail=detail, headers=dict(headers or {}))
        self.code = code
        self.title = title
        self.extra = extra

    def response(self) -> Response:
        return problem_response(
            self.status_code,
            self.code,
            self.title,
            self.detail,
            headers=self.headers,
            **self.extra,
        )


def problem_body(
    status: int, code: str, title: str, detail: str | None = None, **extra: Any
) -> dict[str, Any]:
    """The problem document as a dict (``type`` is ``about:blank``, RFC 9457 §4.2.1)."""
    body: dict[str, Any] = {"type": "about:blank", "title": title, "status": status, "code": code}
    if detail is not None:
        body["detail"] = detail
    body.update(extra)
    return body


def problem_response(
    status: int,
    code: str,
    title: str,
    detail: str | None = None,
    *,
    headers: Mapping[str, str] | None = None,
    **extra: Any,
) -> Response:
    """An ``application/problem+json`` response."""
    content = json.dumps(problem_body(status, code, title, detail, **extra)).encode()
    return Response(content, status_code=status, headers=headers, media_type=PROBLEM_JSON)


def install_problem_handlers(app: FastAPI) -> None:
    """Render every error of ``app`` as problem+json.

    ProblemError keeps its code; other HTTP errors get a code from their status (404
    ``not_found``, 405 ``method_not_allowed``…); request validation errors become 400
    ``malformed_json`` (body is not JSON) or 422 ``validation_failed`` with an
    ``errors`` list; anything else is logged and answered 500 ``internal_error``.
    """
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(Exception, _crash)


async def _http_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if isinstance(exc, ProblemError):
        return exc.response()
    code = _STATUS_CODES.get(exc.status_code, f"http_{exc.status_code}")
    title = code.replace("_", " ").capitalize()
    detail = exc.detail if isinstance(exc.detail, str) and exc.detail != title else None
    return problem_response(exc.status_code, code, title, detail, headers=exc.headers)


async def _validation_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    # The offending input is not echoed back: it may be large or sensitive.
    errors = [
        {
            "loc": [str(part) for part in error.get("loc", ())],
            "msg": str(error.get("msg", "")),
            "type": str(error.get("type", "")),
        }
        for error in exc.errors()
    ]
    if any(error["type"] == "json_invalid" for error in errors):
        return problem_response(400, "malformed_json", "The body is not valid JSON", errors=errors)
    return problem_response(422, "validation_failed", "The request is not valid", errors=errors)


async def _crash(_: Request, __: Exception) -> Response:
    # Starlette re-raises the exception after this response, so the server logs it.
    return problem_response(500, "internal_error", "Internal server error")


class _BodyTooLarge(ProblemError):
    def __init__(self, limit: int) -> None:
        super().__init__(
            413,
            "payload_too_large",
            "The request body is too large",
            f"at most {limit} bytes are accepted",
            max_bytes=limit,
        )


class BodySizeLimit:
    """Reject request bodies larger than ``max_bytes`` with 413 ``payload_too_large``.

    A Content-Length over the limit is refused before the app runs; a streamed body is
    counted as it is read and the read raises a ProblemError (rendered by the problem
    handlers, or here when it escapes them).
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length, chunked = _body_framing(scope)
        if length > self.max_bytes:
            await _BodyTooLarge(self.max_bytes).response()(scope, receive, send)
            return
        if not chunked:
            # The server reads no more than Content-Length (and nothing without it):
            # the body is within the limit, nothing to count.
            await self.app(scope, receive, send)
            return
        await self._guarded(scope, receive, send)

    async def _guarded(self, scope: Scope, receive: Receive, send: Send) -> None:
        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise _BodyTooLarge(self.max_bytes)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _BodyTooLarge as exc:
            if started:
                raise
            await exc.response()(scope, receive, send)


def _body_framing(scope: Scope) -> tuple[int, bool]:
    """The announced Content-Length (0 when absent or unreadable), and whether the body
    comes in chunks (Transfer-Encoding), so its size is known only once read."""
    length, chunked = 0, False
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                length = int(value)
            except ValueError:
                length = 0
        elif name == b"transfer-encoding":
            chunked = True
    return length, chunked


def health_router(checks: Mapping[str, ReadinessCheck], *, timeout: float = 2.0) -> APIRouter:
    """``/healthz`` (the process answers) and ``/readyz`` (every check passes in time).

    Checks run concurrently, each bounded by ``timeout`` seconds. ``/readyz`` answers
    200 ``{"status": "ready", "checks": {...}}`` or 503 ``not_ready`` naming the failures.
    """
    router = APIRouter(tags=["health"])
    healthy = b'{"status":"ok"}'

    @router.get("/healthz", summary="The process is alive", responses=_HEALTH_DOC)
    async def healthz() -> Response:
        return Response(healthy, media_type="application/json")

    @router.get("/readyz", summary="Dependencies are reachable", responses=_READY_DOC)
    async def readyz() -> Response:
        results = await asyncio.gather(*(run_check(c, timeout) for c in checks.values()))
        report = dict(zip(checks, results, strict=True))
        if all(result == "ok" for result in report.values()):
            body = json.dumps({"status": "ready", "checks": report}).encode()
            return Response(body, media_type="application/json")
        return problem_response(503, "not_ready", "A dependency is unavailable", checks=report)

    return router


async def run_check(check: ReadinessCheck, seconds: float, *, with_message: bool = False) -> str:
    """``ok``, ``timeout`` (not done within ``seconds``) or ``error: <type>`` (followed by
    the error's message, at most 300 characters in all, when ``with_message``)."""
    try:
        async with asyncio.timeout(seconds):
            await check()
    except TimeoutError:
        return "timeout"
    except Exception as exc:  # a readiness probe reports any failure, it never raises
        if with_message:
            return f"error: {type(exc).__name__}: {exc}"[:300]
        return f"error: {type(exc).__name__}"
    return "ok"


_HEALTH_DOC: dict[int | str, dict[str, Any]] = {
    200: {"content": {"application/json": {"example": {"status": "ok"}}}},
}
_READY_DOC: dict[int | str, dict[str, Any]] = {
    200: {
        "content": {
            "application/json": {"example": {"status": "ready", "checks": {"eventstore": "ok"}}}
        }
    },
    503: {
        "model": Problem,
        "content": {
            PROBLEM_JSON: {
                "example": problem_body(
                    503,
                    "not_ready",
                    "A dependency is unavailable",
                    checks={"eventstore": "error: StoreUnavailable"},
                )
            }
        },
    },
}


def operations_app(title: str, registry: CollectorRegistry) -> FastAPI:
    """The small app of a worker process (relay, projector): no API documentation,
    problem+json errors and ``GET /metrics``; the caller adds its health routes."""
    app = FastAPI(
        title=title, openapi_url=None, docs_url=None, redoc_url=None, telemetry=NO_NATIVE_TELEMETRY
    )
    install_problem_handlers(app)
    app.include_router(metrics_router(registry))
    return app


def metrics_router(registry: CollectorRegistry) -> APIRouter:
    """``GET /metrics``: the registry in the Prometheus text exposition format."""
    router = APIRouter(tags=["health"])

    @router.get(
        "/metrics", summary="Prometheus metrics", response_class=Response, responses=_METRICS_DOC
    )
    async def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return router


_METRICS_DOC: dict[int | str, dict[str, Any]] = {
    200: {
        "content": {
            CONTENT_TYPE_LATEST: {
                "example": "# HELP http_requests_total HTTP requests answered\n"
                '# TYPE http_requests_total counter\nhttp_requests_total{method="GET",'
                'route="/healthz",status="200"} 42.0\n'
            }
        }
    }
}


_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
"""Methods labelled by name; any other is ``_OTHER``, so clients cannot grow the label set."""


class HttpMetrics:
    """ASGI middleware counting requests and timing them, by method, route and status.

    The route label is the matched path template (``/v1/accounts/{account_id}``), never
    the raw path, so the label set stays bounded.
    """

    def __init__(self, app: ASGIApp, registry: CollectorRegistry) -> None:
        self.app = app
        self.requests = Counter(
            "http_requests_total",
            "HTTP requests answered",
            ["method", "route", "status"],
            registry=registry,
        )
        self.latency = Histogram(
            "http_request_duration_seconds",
            "Time to answer an HTTP request",
            ["method", "route", "status"],
            registry=registry,
        )
        # The labelled children, found once per label set (a label lookup costs more
        # than the count and the observation together).
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def recording_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, recording_send)
        finally:
            route = getattr(scope.get("route"), "path", "unmatched")
            method = scope["method"]
            requests, latency = self._labelled(
                method if method in _METHODS else "_OTHER", route, status
            )
            requests.inc()
            latency.observe(time.perf_counter() - start)

    def _labelled(self, method: str, route: str, status: int) -> tuple[Any, Any]:
        key = (method, route, status)
        children = self._children.get(key)
        if children is None:
            labels = (method, route, str(status))
            children = self._children[key] = (
                self.requests.labels(*labels),
                self.latency.labels(*labels),
            )
        return children
