"""The bridge's wire protocol, without I/O: decode and validate client frames, encode
server frames. Every function here is pure; the server feeds it text and sends what it
returns (see DESIGN.md "WebSocket" and docs/bridge.md).

Client → server (JSON text frames)::

    {"op":"auth","token":"<jwt>"}
    {"op":"subscribe","id":"s1","filter":{"streams":[…],"categories":[…],"types":[…]},
     "after_position":N}
    {"op":"unsubscribe","id":"s1"}
    {"op":"ping"}

Server → client: ``subscribed``, ``unsubscribed``, ``event``, ``caught_up``, ``pong``,
``error``. An event frame is built from two parts: a per-subscription prefix
(``{"op":"event","sub":"s1",``) and the event's body, encoded once per replica
(:class:`EncodedEvent`), so sending one event to many clients costs a concatenation each.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeAlias

from eventstore.model import RecordedEvent, category_of
from ws_bridge.errors import BadFrame

CLOSE_AUTH = 1008
"""Policy violation: no valid token (header, or auth frame in time)."""
CLOSE_DRAINING = 1012
"""Service restart: the replica is shutting down; reconnect (elsewhere) and resume."""
CLOSE_TOO_SLOW = 1013
"""Try again later: the client fell behind its queue; reconnect with after_position."""
CLOSE_BAD_FRAME = 4400
"""A second malformed frame on one connection."""

MAX_ID_LENGTH = 64
MAX_FILTER_VALUES = 100
MAX_NAME_LENGTH = 200


@dataclass(frozen=True, slots=True)
class Filter:
    """Which events a subscription receives. Each non-empty field restricts (an event
    must match every one given); within a field, any value matches. Empty = all."""

    streams: frozenset[str] = frozenset()
    categories: frozenset[str] = frozenset()
    types: frozenset[str] = frozenset()

    def matches(self, event: RecordedEvent) -> bool:
        return (
            (not self.streams or event.stream_id in self.streams)
            and (not self.categories or event.category in self.categories)
            and (not self.types or event.type in self.types)
        )

    def read_categories(self) -> frozenset[str] | None:
        """The categories a store read must cover (None: all): narrowed by streams."""
        if not self.streams:
            return self.categories or None
        of_streams = frozenset(category_of(stream) for stream in self.streams)
        return of_streams & self.categories if self.categories else of_streams


@dataclass(frozen=True, slots=True)
class Auth:
    token: str


@dataclass(frozen=True, slots=True)
class Subscribe:
    id: str
    filter: Filter
    after_position: int | None = None


@dataclass(frozen=True, slots=True)
class Unsubscribe:
    id: str


@dataclass(frozen=True, slots=True)
class Ping:
    pass


ClientFrame: TypeAlias = Auth | Subscribe | Unsubscribe | Ping


def decode(text: str | bytes) -> ClientFrame:
    """The operation in a client frame; raises BadFrame when it is not a valid one."""
    try:
        raw = json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadFrame(f"not JSON: {exc}") from exc
    if not isinstance(raw, dict):
        raise BadFrame("a frame is a JSON object")
    op = raw.get("op")
    if op == "subscribe":
        return _subscribe(raw)
    if op == "unsubscribe":
        _only(raw, {"op", "id"})
        return Unsubscribe(_sub_id(raw.get("id")))
    if op == "ping":
        _only(raw, {"op"})
        return Ping()
    if op == "auth":
        _only(raw, {"op", "token"})
        token = raw.get("token")
        if not isinstance(token, str) or not token:
            raise BadFrame("auth needs a 'token' string")
        return Auth(token)
    raise BadFrame(f"unknown op {op!r}", code="unknown_op")


def _subscribe(raw: Mapping[str, Any]) -> Subscribe:
    _only(raw, {"op", "id", "filter", "after_position"})
    after = raw.get("after_position")
    if after is not None and (isinstance(after, bool) or not isinstance(after, int) or after < 0):
        raise BadFrame("after_position must be a non-negative integer")
    return Subscribe(_sub_id(raw.get("id")), _filter(raw.get("filter", {})), after)


def _filter(raw: object) -> Filter:
    if raw is None:
        return Filter()
    if not isinstance(raw, dict):
        raise BadFrame("filter must be an object")
    _only(raw, {"streams", "categories", "types"}, where="filter")
    return Filter(
        streams=_names(raw, "streams"),
        categories=_names(raw, "categories"),
        types=_names(raw, "types"),
    )


def _names(raw: Mapping[str, Any], key: str) -> frozenset[str]:
    values = raw.get(key)
    if values is None:
        return frozenset()
    if not isinstance(values, list) or len(values) > MAX_FILTER_VALUES:
        raise BadFrame(f"filter.{key} must be a list of at most {MAX_FILTER_VALUES} strings")
    for value in values:
        if not isinstance(value, str) or not value or len(value) > MAX_NAME_LENGTH:
            raise BadFrame(f"filter.{key} holds non-empty strings of <= {MAX_NAME_LENGTH}")
    return frozenset(values)


def _sub_id(value: object) -> str:
    if not isinstance(value, str) or not value or len(value) > MAX_ID_LENGTH:
        raise BadFrame(f"'id' must be a non-empty string of at most {MAX_ID_LENGTH}")
    return value


def _only(raw: Mapping[str, Any], allowed: set[str], where: str = "frame") -> None:
    extra = set(raw) - allowed
    if extra:
        raise BadFrame(f"unexpected keys in {where}: {', '.join(sorted(extra))}")


def _dump(frame: Mapping[str, Any]) -> bytes:
    return json.dumps(frame, separators=(",", ":"), ensure_ascii=False).encode()


class EncodedEvent:
    """An event encoded once: ``body`` completes any subscription's prefix into a frame.

    Frames are memoised by prefix: subscriptions sharing an id (every dashboard says
    "dashboard") share one frame object, which the fan-out then writes to all their
    sockets in one call.
    """

    __slots__ = ("_frames", "body", "event")

    def __init__(self, event: RecordedEvent, body: bytes) -> None:
        self.event = event
        self.body = body
        self._frames: dict[bytes, bytes] = {}

    @property
    def position(self) -> int:
        return self.event.position

    def frame(self, prefix: bytes) -> bytes:
        found = self._frames.get(prefix)
        if found is None:
            found = self._frames[prefix] = prefix + self.body
        return found


def encode_event(event: RecordedEvent) -> EncodedEvent:
    """Encode ``event`` once (UTF-8 JSON, the rest of an event frame after its prefix)."""
    whole = _dump(
        {
            "position": event.position,
            "stream_id": event.stream_id,
            "version": event.version,
            "type": event.type,
            "data": event.data,
            "metadata": event.metadata,
            "recorded_at": event.recorded_at.isoformat(),
        }
    )
    return EncodedEvent(event, whole[1:])


def event_prefix(sub_id: str) -> bytes:
    """The start of every event frame of subscription ``sub_id``."""
    return b'{"op":"event","sub":' + _dump({"": sub_id})[4:-1] + b","


def subscribed(sub_id: str, head_position: int) -> bytes:
    return _dump({"op": "subscribed", "id": sub_id, "head_position": head_position})


def unsubscribed(sub_id: str) -> bytes:
    return _dump({"op": "unsubscribed", "id": sub_id})


def caught_up(sub_id: str, position: int) -> bytes:
    return _dump({"op": "caught_up", "sub": sub_id, "position": position})


def pong() -> bytes:
    return b'{"op":"pong"}'


def error(code: str, message: str, sub_id: str | None = None) -> bytes:
    frame: dict[str, Any] = {"op": "error", "code": code, "message": message}
    if sub_id is not None:
        frame["id"] = sub_id
    return _dump(frame)
