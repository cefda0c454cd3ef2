"""The wire format of an event on the bus: the one definition every component decodes.

A message carries one recorded event:

* body: the event as a UTF-8 JSON object (:func:`event_to_json`) with the keys
  ``event_id``, ``stream_id``, ``version``, ``position``, ``type``, ``category``,
  ``data``, ``metadata`` and ``recorded_at`` (ISO 8601 with offset);
* ``message_id``: the event id, so a duplicate delivery is recognisable;
* routing key: ``<category>.<type>`` (topic exchange; categories and types should not
  contain dots, or the key has more words than bindings expect);
* headers (see ``H_*`` below): position, previous position, stream id, version, type,
  category, and the correlation id, causation id and ``traceparent`` found in the
  event's metadata under those same keys (absent when the metadata has none).

``previous_position`` is the position of the event the relay published just before
this one in log order (0 for the first event). A consumer that receives every event
detects a gap when it differs from the last position it applied; positions are not
dense, so ``position - 1`` means nothing.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeAlias
from uuid import UUID

from pydantic_core import from_json

from eventstore.bus.errors import MessageDecodeError
from eventstore.model import RecordedEvent

HeaderValue: TypeAlias = str | int

CONTENT_TYPE = "application/json"
H_POSITION = "position"
H_PREVIOUS_POSITION = "previous_position"
H_STREAM_ID = "stream_id"
H_VERSION = "version"
H_TYPE = "type"
H_CATEGORY = "category"
TRACE_KEYS = ("correlation_id", "causation_id", "traceparent")
"""Metadata keys copied into headers of the same name when present."""


@dataclass(frozen=True, slots=True)
class Envelope:
    """One event ready for the wire: what a :class:`~eventstore.bus.api.Publisher` sends."""

    message_id: str
    routing_key: str
    headers: Mapping[str, HeaderValue]
    body: bytes
    position: int
    previous_position: int
    event_type: str
    recorded_at: datetime

    @property
    def correlation_id(self) -> str | None:
        value = self.headers.get("correlation_id")
        return value if isinstance(value, str) else None


def routing_key(category: str, event_type: str) -> str:
    """The topic routing key of an event: ``<category>.<type>``."""
    return f"{category}.{event_type}"


def event_to_json(event: RecordedEvent) -> bytes:
    """The message body of ``event``."""
    return json.dumps(
        {
            "event_id": str(event.event_id),
            "stream_id": event.stream_id,
            "version": event.version,
            "position": event.position,
            "type": event.type,
            "category": event.category,
            "data": event.data,
            "metadata": event.metadata,
            "recorded_at": event.recorded_at.isoformat(),
        },
        separators=(",", ":"),
        ensure_ascii=False,
    ).encode()


def encode(event: RecordedEvent, previous_position: int) -> Envelope:
    """The envelope of ``event``, published right after the event at ``previous_position``."""
    headers: dict[str, HeaderValue] = {
        H_POSITION: event.position,
        H_PREVIOUS_POSITION: previous_position,
        H_STREAM_ID: event.stream_id,
        H_VERSION: event.version,
        H_TYPE: event.type,
        H_CATEGORY: event.category,
    }
    for key in TRACE_KEYS:
        value = event.metadata.get(key)
        if isinstance(value, str) and value:
            headers[key] = value
    return Envelope(
        message_id=str(event.event_id),
        routing_key=routing_key(event.category, event.type),
        headers=headers,
        body=event_to_json(event),
        position=event.position,
        previous_position=previous_position,
        event_type=event.type,
        recorded_at=event.recorded_at,
    )


def event_from_json(body: bytes) -> RecordedEvent:
    """Decode a message body; raises MessageDecodeError when it is not an event.

    The body must be UTF-8 JSON as :func:`event_to_json` writes it. pydantic-core's
    parser gives the same objects as ``json.loads`` (integers of any size, floats to
    the last bit, NaN and Infinity) several times faster, but is stricter on what no
    encoder of ours produces: a byte-order mark, or an escaped lone surrogate
    (``"\\ud800"``, which PostgreSQL's jsonb refuses too), is a decode error.
    """
    try:
        # from_json raises ValueError on malformed JSON and invalid UTF-8 alike.
        raw = from_json(body)
        event_id, stream_id, version = raw["event_id"], raw["stream_id"], raw["version"]
        position, type_, data = raw["position"], raw["type"], raw["data"]
        metadata, recorded_at = raw["metadata"], raw["recorded_at"]
    except (ValueError, TypeError, KeyError) as exc:
        raise MessageDecodeError(f"not an event message: {exc}") from exc
    # The parser makes exact str, int and dict objects (a bool is no int), so identity
    # tests of the types cover every field; the slow path only names the culprit.
    if not (
        type(event_id) is str
        and type(stream_id) is str
        and type(version) is int
        and type(position) is int
        and type(type_) is str
        and type(data) is dict
        and type(metadata) is dict
        and type(recorded_at) is str
    ):
        raise MessageDecodeError(f"not an event message: {_mistyped(raw)}")
    try:
        return RecordedEvent(
            event_id=UUID(event_id),
            stream_id=stream_id,
            version=version,
            position=position,
            type=type_,
            data=data,
            metadata=metadata,
            recorded_at=datetime.fromisoformat(recorded_at),
        )
    except ValueError as exc:
        raise MessageDecodeError(f"not an event message: {exc}") from exc


def previous_position_of(headers: Mapping[str, Any] | None) -> int:
    """The ``previous_position`` header; raises MessageDecodeError when missing."""
    value = (headers or {}).get(H_PREVIOUS_POSITION)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise MessageDecodeError(f"bad or missing {H_PREVIOUS_POSITION} header: {value!r}")
    return value


_KINDS = {
    "event_id": str,
    "stream_id": str,
    "version": int,
    "position": int,
    "type": str,
    "data": dict,
    "metadata": dict,
    "recorded_at": str,
}


def _mistyped(raw: dict[str, Any]) -> str:
    for key, kind in _KINDS.items():
        if type(raw[key]) is not kind:
            return f"{key} must be {kind.__name__}, got {type(raw[key]).__name__}"
    return "no field is mistyped"
