"""Tracing is off by default and turned on only by the standard OTEL_* variables; the
helpers pass a span's context through event metadata."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider

from chronicle.observability.otel import configure_tracing, exporter_names
from eventstore import tracing


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, []),
        ({"OTEL_TRACES_EXPORTER": "none"}, []),
        ({"OTEL_TRACES_EXPORTER": "console"}, ["console"]),
        ({"OTEL_TRACES_EXPORTER": "otlp, console"}, ["otlp", "console"]),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, ["otlp"]),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318/v1/traces"}, ["otlp"]),
        ({"OTEL_TRACES_EXPORTER": "console", "OTEL_SDK_DISABLED": "true"}, []),
    ],
)
def test_exporters_come_from_the_environment(env: dict[str, str], expected: list[str]) -> None:
    assert exporter_names(env) == expected


def test_no_configuration_means_no_tracing() -> None:
    was_on = tracing.enabled()
    assert configure_tracing("relay", {}) is was_on
    assert tracing.enabled() is was_on


def test_an_unknown_exporter_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown exporter"):
        configure_tracing("relay", {"OTEL_TRACES_EXPORTER": "zipkin-ish"})


def test_traceparent_round_trip_through_metadata() -> None:
    tracer = TracerProvider().get_tracer("test")
    with tracer.start_as_current_span("post") as span:
        traceparent = tracing.current_traceparent()
    context = span.get_span_context()
    assert traceparent is not None
    assert traceparent.startswith(f"00-{context.trace_id:032x}-{context.span_id:016x}-")
    assert tracing.trace_id_of(traceparent) == f"{context.trace_id:032x}"
    assert tracing.trace_id_of("garbage") is None
    assert tracing.trace_id_of(None) is None


def test_without_a_span_there_is_no_traceparent() -> None:
    with trace.use_span(trace.INVALID_SPAN):
        assert tracing.current_traceparent() is None


OFF_BY_DEFAULT = """
from datetime import UTC, datetime
from uuid import uuid4

from eventstore import RecordedEvent, tracing

assert not tracing.enabled()
event = RecordedEvent(
    uuid4(), "account-1", 1, 1, "Opened", {},
    {"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"},
    datetime.now(UTC),
)
tracing.record_event_spans("x", [event], 0)
with tracing.span("y") as current:
    assert not current.get_span_context().is_valid
print("off")
"""


def test_a_fresh_process_records_no_spans() -> None:
    # A process of its own: this test session may have installed a provider already.
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    done = subprocess.run(
        [sys.executable, "-c", OFF_BY_DEFAULT], capture_output=True, text=True, env=env, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "off"
