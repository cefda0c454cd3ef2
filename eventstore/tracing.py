"""Tracing helpers every process shares: one trace from the POST to the WebSocket push.

The command API stores the W3C ``traceparent`` of its request span in each event's
metadata; the relay copies it into the message headers (``eventstore.bus.wire``). Each
later stage (relay publish, projection apply, bridge delivery) records a span whose
parent is that ``traceparent``, so they all join the POST's trace.

Everything here goes through the OpenTelemetry API only: until a process installs an
SDK tracer provider with :func:`use_provider` (``chronicle.observability`` does),
:func:`enabled` is false and the helpers cost a function call. Spans of batched
stages are recorded after the batch, with its start and end times, so the hot paths
never wait on tracing.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TypeVar

from opentelemetry import propagate, trace
from opentelemetry.trace import ProxyTracerProvider, Span, SpanKind, TracerProvider
from opentelemetry.util.types import AttributeValue

from eventstore.model import RecordedEvent

T = TypeVar("T")

TRACER_NAME = "chronicle"

correlation_id: ContextVar[str | None] = ContextVar("chronicle_correlation_id", default=None)
"""The correlation id of the work in progress (a request or an event), for the logs."""


class _State:
    # Looking the provider up costs microseconds on every call; the hot paths (each
    # append, each fanned-out event) ask a flag instead, set once by use_provider().
    enabled = False


def use_provider(provider: TracerProvider) -> None:
    """Install ``provider`` as the process's tracer provider and turn the pipeline's
    spans on. OpenTelemetry allows this once per process; later calls are ignored
    with a warning by OpenTelemetry, and the spans stay on."""
    trace.set_tracer_provider(provider)
    _State.enabled = not isinstance(
        trace.get_tracer_provider(), ProxyTracerProvider | trace.NoOpTracerProvider
    )


def enabled() -> bool:
    """Whether a real tracer provider was installed through :func:`use_provider`."""
    return _State.enabled


def current_traceparent() -> str | None:
    """The ``traceparent`` of the current span, or None when no span is recording."""
    if not trace.get_current_span().get_span_context().is_valid:
        return None
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier.get("traceparent")


def trace_id_of(traceparent: object) -> str | None:
    """The 32-hex-digit trace id inside a ``traceparent`` (None when malformed)."""
    if not isinstance(traceparent, str):
        return None
    parts = traceparent.split("-")
    return parts[1] if len(parts) == 4 and len(parts[1]) == 32 else None


@contextmanager
def span(name: str, attributes: Mapping[str, AttributeValue] | None = None) -> Iterator[Span]:
    """A span around a block, child of the current span (an invalid one when disabled)."""
    if not enabled():
        yield trace.INVALID_SPAN
        return
    tracer = trace.get_tracer(TRACER_NAME)
    with tracer.start_as_current_span(name, attributes=attributes) as current:
        yield current


def record_event_spans(
    name: str,
    events: Iterable[RecordedEvent],
    start_ns: int,
    attributes: Mapping[str, AttributeValue] | None = None,
    kind: SpanKind = SpanKind.INTERNAL,
) -> None:
    """One span per event that carries a ``traceparent``, from ``start_ns`` to now,
    each a child of its event's trace. Does nothing when tracing is off."""
    if not enabled():
        return
    tracer = trace.get_tracer(TRACER_NAME)
    end_ns = time.time_ns()
    for event in events:
        traceparent = event.metadata.get("traceparent")
        if not isinstance(traceparent, str):
            continue
        parent = propagate.extract({"traceparent": traceparent})
        recorded = tracer.start_span(name, context=parent, kind=kind, start_time=start_ns)
        recorded.set_attributes(_event_attributes(event))
        if attributes:
            recorded.set_attributes(attributes)
        recorded.end(end_time=end_ns)


async def traced_batch(
    work: Callable[[], Awaitable[T]], name: str, events: Iterable[RecordedEvent], kind: SpanKind
) -> T:
    """Await ``work()``; once it succeeds, record :func:`record_event_spans` for it."""
    start_ns = time.time_ns()
    result = await work()
    record_event_spans(name, events, start_ns, kind=kind)
    return result


def _event_attributes(event: RecordedEvent) -> dict[str, AttributeValue]:
    return {
        "chronicle.event.position": event.position,
        "chronicle.event.type": event.type,
        "chronicle.stream_id": event.stream_id,
    }
