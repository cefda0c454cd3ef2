"""Input limits and validation shared by every backend.

Everything here runs before a backend touches its database, so a rejected append has
written nothing. Validation also encodes the JSON once; backends store those strings.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from eventstore.errors import BatchTooLarge, InvalidEvent, InvalidStreamId, InvalidVersion
from eventstore.model import ExpectedVersion, NewEvent, StreamState

MAX_EVENTS_PER_TRANSACTION = 0xFFFF
"""Hard ceiling from the PostgreSQL position layout (16 bits of in-transaction index)."""

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# A JSON-escaped NUL that is not itself an escaped backslash followed by "u0000":
# PostgreSQL's jsonb cannot store U+0000, so both backends refuse it alike.
_ESCAPED_NUL = re.compile(r"(?<!\\)(?:\\\\)*\\u0000")
_ENCODER = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":"))


@dataclass(frozen=True, slots=True)
class Limits:
    """What one append may carry. Defaults: 1 MiB per event, 1,000 events per append."""

    max_event_bytes: int = 1024 * 1024
    max_batch: int = 1000
    max_stream_id_length: int = 200
    max_type_length: int = 200

    def __post_init__(self) -> None:
        if not 1 <= self.max_batch <= MAX_EVENTS_PER_TRANSACTION:
            raise ValueError(f"max_batch must be between 1 and {MAX_EVENTS_PER_TRANSACTION}")
        if self.max_event_bytes < 1:
            raise ValueError("max_event_bytes must be positive")


@dataclass(frozen=True, slots=True)
class EncodedEvent:
    """A validated event with its JSON already encoded."""

    event: NewEvent
    data_json: str
    metadata_json: str


def check_stream_id(stream_id: object, limits: Limits) -> str:
    """Return the stream id if it is a non-empty, bounded string without control characters."""
    if not isinstance(stream_id, str) or not stream_id:
        raise InvalidStreamId("stream id must be a non-empty string")
    if len(stream_id) > limits.max_stream_id_length:
        raise InvalidStreamId(
            f"stream id is {len(stream_id)} characters, at most "
            f"{limits.max_stream_id_length} allowed",
        )
    if _CONTROL.search(stream_id):
        raise InvalidStreamId("stream id must not contain control characters")
    return stream_id


def check_expected_version(expected: ExpectedVersion) -> int | None:
    """Translate an expectation into an exact version, or None for ANY."""
    if isinstance(expected, StreamState):
        return None if expected is StreamState.ANY else 0
    if isinstance(expected, bool) or not isinstance(expected, int):
        raise InvalidVersion(f"expected version must be an int, ANY or NO_STREAM: {expected!r}")
    if expected < 0:
        raise InvalidVersion(f"expected version must not be negative: {expected}")
    return expected


def check_non_negative(name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidVersion(f"{name} must be a non-negative integer: {value!r}")
    return value


def encode_events(events: Sequence[NewEvent], limits: Limits) -> list[EncodedEvent]:
    """Validate a batch and encode each event's JSON once.

    Raises InvalidEvent or BatchTooLarge; never touches a database.
    """
    if not events:
        raise InvalidEvent("an append needs at least one event")
    if len(events) > limits.max_batch:
        raise BatchTooLarge(f"{len(events)} events in one append, at most {limits.max_batch}")
    encoded: list[EncodedEvent] = []
    metadata: tuple[object, str, int] = (None, "", 0)
    for event in events:
        if not isinstance(event, NewEvent):
            raise InvalidEvent(f"expected a NewEvent, got {type(event).__name__}")
        # Events of one command usually share one metadata object: encode it once.
        if metadata[0] is not event.metadata:
            metadata = (event.metadata, *_encode_object("metadata", event.metadata))
        encoded.append(_encode_one(event, limits, metadata[1], metadata[2]))
    ids = {item.event.event_id for item in encoded}
    if len(ids) != len(encoded):
        raise InvalidEvent("the same event id appears twice in one append")
    return encoded


def _encode_one(
    event: NewEvent, limits: Limits, metadata_json: str, metadata_bytes: int
) -> EncodedEvent:
    if not isinstance(event.type, str) or not event.type:
        raise InvalidEvent("event type must be a non-empty string")
    if len(event.type) > limits.max_type_length or _CONTROL.search(event.type):
        raise InvalidEvent(f"event type {event.type[:50]!r} is too long or has control chars")
    data_json, data_bytes = _encode_object("data", event.data)
    size = data_bytes + metadata_bytes
    if size > limits.max_event_bytes:
        raise InvalidEvent(
            f"event {event.event_id} is {size} bytes of JSON, at most "
            f"{limits.max_event_bytes} allowed",
        )
    return EncodedEvent(event, data_json, metadata_json)


def _encode_object(name: str, value: Mapping[str, Any]) -> tuple[str, int]:
    """The compact JSON of a JSON object and its size in UTF-8 bytes."""
    if type(value) is not dict:  # the common case skips the slower ABC check
        if not isinstance(value, Mapping):
            raise InvalidEvent(f"event {name} must be a JSON object, got {type(value).__name__}")
        value = dict(value)
    try:
        text = _ENCODER.encode(value)
        size = len(text.encode())  # also refuses lone surrogates
    except (TypeError, ValueError) as exc:
        raise InvalidEvent(f"event {name} is not valid JSON: {exc}") from exc
    # The substring test is cheap and almost always false; the regex rules out an
    # escaped backslash followed by the letters "u0000".
    if "\\u0000" in text and _ESCAPED_NUL.search(text):
        raise InvalidEvent(f"event {name} contains a NUL character (U+0000)")
    return text, size
