"""Observability of every process: JSON logs and OpenTelemetry tracing.

:func:`configure` is called once by each ``chronicle`` verb before it runs (see
docs/operations.md for the metrics, alerts and what to do about them).
"""

from __future__ import annotations

from chronicle.observability.logs import JsonFormatter, configure_logging, redact
from chronicle.observability.otel import configure_tracing, instrument_app


def configure(level: str, service: str) -> None:
    """JSON logs at ``level`` on stdout, and tracing when the ``OTEL_*`` variables ask."""
    configure_logging(level)
    configure_tracing(service)


__all__ = [
    "JsonFormatter",
    "configure",
    "configure_logging",
    "configure_tracing",
    "instrument_app",
    "redact",
]
