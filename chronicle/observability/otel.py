"""OpenTelemetry tracing, configured by the standard ``OTEL_*`` variables; off by default.

Tracing starts only when ``OTEL_TRACES_EXPORTER`` names an exporter (``otlp``,
``console``; several separated by commas) or an OTLP endpoint is set
(``OTEL_EXPORTER_OTLP_ENDPOINT`` / ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``, which imply
``otlp``). ``OTEL_SDK_DISABLED=true`` or ``OTEL_TRACES_EXPORTER=none`` keeps it off.
The SDK itself reads the rest: ``OTEL_SERVICE_NAME``, ``OTEL_RESOURCE_ATTRIBUTES``,
``OTEL_TRACES_SAMPLER(_ARG)``, ``OTEL_BSP_*`` and ``OTEL_EXPORTER_OTLP_*``.

When on, asyncpg queries and aio-pika consumers are instrumented process-wide, and
:func:`instrument_app` adds a server span to each request of a FastAPI app (health
and metrics endpoints excepted); ``eventstore.tracing`` adds the pipeline's own spans.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping

from fastapi import FastAPI
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SpanExporter,
)
from starlette.types import ASGIApp, Receive, Scope, Send

from eventstore import tracing

log = logging.getLogger(__name__)

_UNTRACED_URLS = "/healthz,/readyz,/metrics"
EXPORTERS = ("otlp", "console")


def exporter_names(env: Mapping[str, str]) -> list[str]:
    """The exporters the environment asks for (empty: tracing stays off)."""
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return []
    configured = env.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if not configured:
        endpoints = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        return ["otlp"] if any(env.get(key) for key in endpoints) else []
    names = [name.strip() for name in configured.split(",") if name.strip()]
    return [name for name in names if name != "none"]


def _exporter(name: str) -> SpanExporter:
    if name == "console":
        return ConsoleSpanExporter()
    # Imported only when asked for: it pulls in protobuf and an HTTP client.
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter()


def configure_tracing(service: str, env: Mapping[str, str] | None = None) -> bool:
    """Install the SDK tracer provider and instrumentation when the environment asks
    for an exporter; True when tracing is on. Raises ValueError for an unknown
    exporter name. Does nothing when a provider is installed already."""
    env = os.environ if env is None else env
    names = exporter_names(env)
    unknown = [name for name in names if name not in EXPORTERS]
    if unknown:
        raise ValueError(f"OTEL_TRACES_EXPORTER: unknown exporter {unknown[0]!r} (otlp, console)")
    if not names or tracing.enabled():
        return tracing.enabled()
    attributes = {} if env.get("OTEL_SERVICE_NAME") else {SERVICE_NAME: f"chronicle-{service}"}
    provider = TracerProvider(resource=Resource.create(attributes))
    for name in names:
        provider.add_span_processor(BatchSpanProcessor(_exporter(name)))
    install(provider)
    log.info("tracing on: exporters %s", ", ".join(names))
    return True


def install(provider: TracerProvider) -> None:
    """Make ``provider`` the process's tracer provider and instrument the drivers."""
    from opentelemetry.instrumentation.aio_pika import AioPikaInstrumentor
    from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor

    tracing.use_provider(provider)
    AsyncPGInstrumentor().instrument(tracer_provider=provider)  # type: ignore[no-untyped-call]
    AioPikaInstrumentor().instrument(tracer_provider=provider)


def instrument_app(app: FastAPI) -> None:
    """Make each request's ``X-Correlation-Id`` the logs' correlation id and, when
    tracing is on, give each request a server span (continuing an incoming
    ``traceparent``). Call before the app starts."""
    app.add_middleware(CorrelationId)
    if not tracing.enabled():
        return
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    FastAPIInstrumentor.instrument_app(app, excluded_urls=_UNTRACED_URLS)


class CorrelationId:
    """ASGI middleware: the request's ``X-Correlation-Id`` header (if any) becomes
    ``eventstore.tracing.correlation_id`` while the request runs."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        value = None
        if scope["type"] == "http":
            for name, raw in scope["headers"]:
                if name == b"x-correlation-id":
                    value = raw.decode("latin-1")[:200]
        token = tracing.correlation_id.set(value)
        try:
            await self.app(scope, receive, send)
        finally:
            tracing.correlation_id.reset(token)
