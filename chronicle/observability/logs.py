"""Structured logs: one JSON object per line on stdout.

Each line has ``time``, ``level``, ``logger``, ``message``, ``trace_id`` and ``span_id``
(of the span current when the line was logged, else null), ``correlation_id`` (of the
request or event being handled, else null) and ``exception`` when there is one.

Secrets never reach the output: whatever a caller passes, the rendered message and
exception text go through :func:`redact`, which masks JSON Web Tokens, ``Bearer``
credentials and URL passwords.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime

from opentelemetry import trace

from eventstore import tracing

_JWT = re.compile(r"\beyJ[\w-]*\.[\w-]+\.[\w-]*")
_BEARER = re.compile(r"(?i)\b(bearer|basic)\s+[\w.~+/=-]+")
_URL_PASSWORD = re.compile(r"(\w+://[^:/@\s]*:)[^@\s]+@")


def redact(text: str) -> str:
    """``text`` with JWTs, Authorization credentials and URL passwords masked."""
    text = _JWT.sub("[jwt]", text)
    text = _BEARER.sub(r"\1 [redacted]", text)
    return _URL_PASSWORD.sub(r"\1***@", text)


class JsonFormatter(logging.Formatter):
    """Formats a record as one line of JSON (see module docs)."""

    def format(self, record: logging.LogRecord) -> str:
        context = trace.get_current_span().get_span_context()
        line = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": redact(record.getMessage()),
            "trace_id": f"{context.trace_id:032x}" if context.is_valid else None,
            "span_id": f"{context.span_id:016x}" if context.is_valid else None,
            "correlation_id": tracing.correlation_id.get(),
        }
        if record.exc_info:
            line["exception"] = redact(self.formatException(record.exc_info))
        return json.dumps(line, default=str)


def configure_logging(level: str) -> None:
    """Send every log record at ``level`` or above to stdout as JSON lines.

    Replaces the root logger's handlers (so calling it twice does not double lines);
    uvicorn's loggers propagate to the root and share the format.
    """
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True
