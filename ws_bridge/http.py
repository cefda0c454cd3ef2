"""Plain HTTP on the bridge's port, answered before any WebSocket upgrade
(the ``process_request`` hook of websockets).

* ``GET /healthz``: the process answers (touches nothing);
* ``GET /readyz``: the event store and the broker answer and the live feed started
  (503 problem+json ``not_ready`` otherwise);
* ``GET /metrics``: Prometheus text;
* ``GET /`` and the dashboard's static files, and ``GET /config.json`` (where the
  dashboard finds the query API);
* ``/v1/ws``: the WebSocket endpoint (the upgrade proceeds); anything else is 404.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import mimetypes
from collections.abc import Awaitable, Callable, Mapping
from http import HTTPStatus
from pathlib import Path

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from websockets.asyncio.server import ServerConnection
from websockets.http11 import Request, Response

WS_PATH = "/v1/ws"
BUNDLED_STATIC = Path(__file__).parent / "static"

ReadinessCheck = Callable[[], Awaitable[None]]


class HttpRoutes:
    """The ``process_request`` hook: answers plain HTTP, lets ``/v1/ws`` upgrade."""

    def __init__(
        self,
        checks: Mapping[str, ReadinessCheck],
        registry: CollectorRegistry,
        static_files: Mapping[str, tuple[bytes, str]],
        client_config: Mapping[str, object],
        *,
        check_timeout: float = 2.0,
    ) -> None:
        self._checks = dict(checks)
        self._registry = registry
        self._files = dict(static_files)
        self._config = json.dumps(dict(client_config)).encode()
        self._timeout = check_timeout

    async def __call__(self, connection: ServerConnection, request: Request) -> Response | None:
        path = request.path.split("?", 1)[0]
        if path == WS_PATH:
            return None
        if path == "/healthz":
            return respond(connection, HTTPStatus.OK, b'{"status":"ok"}', "application/json")
        if path == "/readyz":
            return await self._ready(connection)
        if path == "/metrics":
            return respond(
                connection, HTTPStatus.OK, generate_latest(self._registry), CONTENT_TYPE_LATEST
            )
        if path == "/config.json":
            return respond(connection, HTTPStatus.OK, self._config, "application/json")
        return self._static_file(connection, path)

    async def _ready(self, connection: ServerConnection) -> Response:
        results = await asyncio.gather(*(self._run(check) for check in self._checks.values()))
        report = dict(zip(self._checks, results, strict=True))
        if all(result == "ok" for result in report.values()):
            body = json.dumps({"status": "ready", "checks": report}).encode()
            return respond(connection, HTTPStatus.OK, body, "application/json")
        problem = {
            "type": "about:blank",
            "title": "A dependency is unavailable",
            "status": 503,
            "code": "not_ready",
            "checks": report,
        }
        return respond(
            connection,
            HTTPStatus.SERVICE_UNAVAILABLE,
            json.dumps(problem).encode(),
            "application/problem+json",
        )

    async def _run(self, check: ReadinessCheck) -> str:
        try:
            async with asyncio.timeout(self._timeout):
                await check()
        except TimeoutError:
            return "timeout"
        except Exception as exc:  # a readiness probe reports any failure, it never raises
            return f"error: {type(exc).__name__}"
        return "ok"

    def _static_file(self, connection: ServerConnection, path: str) -> Response:
        name = "index.html" if path in ("/", "") else path.lstrip("/")
        found = self._files.get(name)
        if found is None:
            return respond(connection, HTTPStatus.NOT_FOUND, b"not found\n", "text/plain")
        body, content_type = found
        return respond(connection, HTTPStatus.OK, body, content_type)


def load_static(folder: Path) -> dict[str, tuple[bytes, str]]:
    """Every file under ``folder`` by relative name, with its content type. Read once
    at start-up: the files are small, and requests then never touch the disk (nor can
    a path like ``/../x`` reach outside the folder)."""
    files: dict[str, tuple[bytes, str]] = {}
    for path in sorted(folder.rglob("*")):
        if not path.is_file():
            continue
        content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        if content_type.startswith("text/") or content_type.endswith("javascript"):
            content_type += "; charset=utf-8"
        files[path.relative_to(folder).as_posix()] = (path.read_bytes(), content_type)
    return files


def respond(
    connection: ServerConnection, status: HTTPStatus, body: bytes, content_type: str
) -> Response:
    """A complete HTTP response (the connection closes after it)."""
    response = connection.respond(status, "")
    headers = response.headers
    for name in ("Content-Type", "Content-Length"):
        del headers[name]
    headers["Content-Type"] = content_type
    headers["Content-Length"] = str(len(body))
    headers["Cache-Control"] = "no-store"
    return dataclasses.replace(response, body=body)
