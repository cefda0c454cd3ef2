"""The wire format: what every consumer decodes."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from eventstore.bus import MessageDecodeError, encode
from eventstore.bus.wire import event_from_json, previous_position_of, routing_key
from tests.unit.relay.helpers import recorded_event


def test_an_event_survives_the_round_trip() -> None:
    event = recorded_event(42, stream="account-7f", type_="MoneyDeposited")
    envelope = encode(event, previous_position=17)
    assert event_from_json(envelope.body) == event
    assert previous_position_of(envelope.headers) == 17


def test_envelope_carries_id_routing_key_and_headers() -> None:
    event = recorded_event(42, stream="account-7f", type_="MoneyDeposited")
    envelope = encode(event, previous_position=17)
    assert envelope.message_id == str(event.event_id)
    assert envelope.routing_key == "account.MoneyDeposited"
    assert envelope.position == 42
    assert envelope.previous_position == 17
    assert dict(envelope.headers) == {
        "position": 42,
        "previous_position": 17,
        "stream_id": "account-7f",
        "version": 1,
        "type": "MoneyDeposited",
        "category": "account",
        "correlation_id": "c-1",
        "causation_id": "c-0",
        "traceparent": "00-ab-cd-01",
    }
    assert envelope.correlation_id == "c-1"


def test_trace_headers_are_left_out_when_the_metadata_has_none() -> None:
    event = recorded_event(3)
    bare = type(event)(**{**_fields(event), "metadata": {"traceparent": 7, "actor": "x"}})
    headers = encode(bare, 0).headers
    assert not {"correlation_id", "causation_id", "traceparent"} & set(headers)


def _fields(event: object) -> dict[str, object]:
    return {name: getattr(event, name) for name in event.__slots__}  # type: ignore[attr-defined]


def test_body_is_plain_json_with_every_field() -> None:
    event = recorded_event(5, stream="transfer-1")
    body = json.loads(encode(event, 0).body)
    assert body["category"] == "transfer"
    assert body["recorded_at"] == event.recorded_at.isoformat()
    assert set(body) == {
        "event_id",
        "stream_id",
        "version",
        "position",
        "type",
        "category",
        "data",
        "metadata",
        "recorded_at",
    }


@pytest.mark.parametrize(
    "body",
    [b"not json", b"[]", b'{"event_id": "x"}', json.dumps({"position": True}).encode()],
)
def test_a_body_that_is_no_event_is_refused(body: bytes) -> None:
    with pytest.raises(MessageDecodeError):
        event_from_json(body)


def test_a_wrongly_typed_field_is_refused() -> None:
    body = json.loads(encode(recorded_event(5), 0).body)
    body["version"] = "1"
    with pytest.raises(MessageDecodeError, match="version"):
        event_from_json(json.dumps(body).encode())


@pytest.mark.parametrize(
    "headers", [None, {}, {"previous_position": "3"}, {"previous_position": -1}]
)
def test_previous_position_is_required(headers: dict[str, object] | None) -> None:
    with pytest.raises(MessageDecodeError):
        previous_position_of(headers)


def test_routing_key_is_category_dot_type() -> None:
    assert routing_key("account", "AccountOpened") == "account.AccountOpened"


def test_recorded_at_keeps_its_offset() -> None:
    event = recorded_event(1)
    assert event_from_json(encode(event, 0).body).recorded_at.tzinfo is not None
    assert event.recorded_at <= datetime.now(UTC)


def test_data_values_come_back_as_the_same_python_objects() -> None:
    data = {
        "big": 123456789012345678901234567890,
        "negative": -9223372036854775809,
        "floats": [0.1, 5e-324, 1.7976931348623157e308, -0.0, 1e23],
        "nested": {"flag": True, "none": None, "text": "dépôt 😀"},
    }
    event = type(recorded_event(1))(**{**_fields(recorded_event(1)), "data": data})
    decoded = event_from_json(encode(event, 0).body).data
    assert decoded == data
    assert repr(decoded) == repr(data)


@pytest.mark.parametrize(
    "body",
    [
        b"\xef\xbb\xbf" + encode(recorded_event(1), 0).body,
        encode(recorded_event(1), 0).body.replace(b'"metadata":{', b'"metadata":{"x":"\\ud800",'),
        encode(recorded_event(1), 0).body.replace(b'"metadata":{', b'"metadata":{"x":"\xff",'),
        encode(recorded_event(1), 0).body + b" trailing",
        b"",
    ],
    ids=["byte-order-mark", "lone-surrogate", "invalid-utf8", "trailing-data", "empty"],
)
def test_bodies_no_encoder_of_ours_writes_are_refused(body: bytes) -> None:
    with pytest.raises(MessageDecodeError):
        event_from_json(body)
