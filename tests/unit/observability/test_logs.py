"""JSON log lines: one object per line with level, logger, message, trace and
correlation ids; secrets masked whatever the caller logged."""

from __future__ import annotations

import json
import logging
import sys

import pytest
from opentelemetry.sdk.trace import TracerProvider

from chronicle.observability import JsonFormatter, configure_logging, redact
from eventstore import tracing

JWT = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJhbm4iLCJleHAiOjE3MDAwMDAwMDB9"
    ".sflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
)


def _line(message: str, *args: object, exc: bool = False) -> dict[str, object]:
    record = logging.LogRecord("chronicle.test", logging.WARNING, __file__, 1, message, args, None)
    if exc:
        try:
            raise ValueError(f"boom with {JWT}")
        except ValueError:
            record.exc_info = sys.exc_info()
    rendered = JsonFormatter().format(record)
    assert "\n" not in rendered
    parsed: dict[str, object] = json.loads(rendered)
    return parsed


def test_a_line_is_one_json_object_with_the_fields() -> None:
    line = _line("hello %s", "world")
    assert line["level"] == "WARNING"
    assert line["logger"] == "chronicle.test"
    assert line["message"] == "hello world"
    assert line["trace_id"] is None
    assert line["correlation_id"] is None
    assert isinstance(line["time"], str)


def test_the_current_span_and_correlation_id_are_carried() -> None:
    tracer = TracerProvider().get_tracer("test")  # a local provider: no global state
    token = tracing.correlation_id.set("corr-42")
    try:
        with tracer.start_as_current_span("work") as span:
            line = _line("inside")
            expected = f"{span.get_span_context().trace_id:032x}"
    finally:
        tracing.correlation_id.reset(token)
    assert line["trace_id"] == expected
    assert line["correlation_id"] == "corr-42"


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        (f"token {JWT} refused", JWT),
        ("Authorization: Bearer abc.def-123", "abc.def-123"),
        ("connecting to postgresql://app:s3cret@db:5432/x", "s3cret"),
        ("amqp://guest:hunter2@mq:5672/", "hunter2"),
    ],
)
def test_secrets_are_masked(text: str, secret: str) -> None:
    assert secret not in redact(text)
    assert secret not in json.dumps(_line("%s", text))


def test_exception_text_is_masked_too() -> None:
    line = _line("failed", exc=True)
    assert "ValueError" in str(line["exception"])
    assert JWT not in str(line["exception"])


def test_configure_logging_sets_the_level_and_one_handler() -> None:
    root = logging.getLogger()
    saved = (root.level, list(root.handlers))
    try:
        configure_logging("warning")
        configure_logging("debug")
        assert root.level == logging.DEBUG
        json_handlers = [h for h in root.handlers if isinstance(h.formatter, JsonFormatter)]
        assert len(json_handlers) == 1
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in saved[1]:
            root.addHandler(handler)
        root.setLevel(saved[0])
