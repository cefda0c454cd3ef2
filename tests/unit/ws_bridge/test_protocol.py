"""The wire protocol, without sockets: decoding, validation, encoding."""

from __future__ import annotations

import json

import pytest

from ws_bridge import protocol
from ws_bridge.errors import BadFrame
from ws_bridge.protocol import Filter

from .helpers import event


def test_subscribe_is_decoded_with_its_filter_and_resume_point() -> None:
    frame = protocol.decode(
        '{"op":"subscribe","id":"s1","filter":{"streams":["account-a"],'
        '"categories":["account"],"types":["MoneyDeposited"]},"after_position":42}'
    )
    assert frame == protocol.Subscribe(
        "s1",
        Filter(frozenset({"account-a"}), frozenset({"account"}), frozenset({"MoneyDeposited"})),
        42,
    )


def test_other_operations_are_decoded() -> None:
    assert protocol.decode('{"op":"ping"}') == protocol.Ping()
    assert protocol.decode('{"op":"unsubscribe","id":"s1"}') == protocol.Unsubscribe("s1")
    assert protocol.decode(b'{"op":"auth","token":"t"}') == protocol.Auth("t")
    assert protocol.decode('{"op":"subscribe","id":"x"}') == protocol.Subscribe("x", Filter())


@pytest.mark.parametrize(
    "text",
    [
        "not json",
        "[1]",
        '{"op":"dance"}',
        '{"op":"subscribe"}',
        '{"op":"subscribe","id":""}',
        '{"op":"subscribe","id":"' + "x" * 65 + '"}',
        '{"op":"subscribe","id":"s","after_position":-1}',
        '{"op":"subscribe","id":"s","after_position":true}',
        '{"op":"subscribe","id":"s","after_position":"3"}',
        '{"op":"subscribe","id":"s","filter":[]}',
        '{"op":"subscribe","id":"s","filter":{"streams":"a"}}',
        '{"op":"subscribe","id":"s","filter":{"streams":[1]}}',
        '{"op":"subscribe","id":"s","filter":{"streams":[""]}}',
        '{"op":"subscribe","id":"s","filter":{"colour":["red"]}}',
        '{"op":"subscribe","id":"s","extra":1}',
        '{"op":"auth"}',
        '{"op":"ping","x":1}',
        b"\xff\xfe",
    ],
)
def test_malformed_frames_are_refused(text: str | bytes) -> None:
    with pytest.raises(BadFrame):
        protocol.decode(text)


def test_too_many_filter_values_are_refused() -> None:
    streams = [f"s-{i}" for i in range(protocol.MAX_FILTER_VALUES + 1)]
    text = json.dumps({"op": "subscribe", "id": "s", "filter": {"streams": streams}})
    with pytest.raises(BadFrame):
        protocol.decode(text)


def test_an_event_is_encoded_once_and_completed_per_subscription() -> None:
    encoded = protocol.encode_event(event(7, "account-a"))
    one = json.loads(encoded.frame(protocol.event_prefix("s1")))
    two = json.loads(encoded.frame(protocol.event_prefix('quote"d')))
    assert one == {
        "op": "event",
        "sub": "s1",
        "position": 7,
        "stream_id": "account-a",
        "version": 1,
        "type": "MoneyDeposited",
        "data": {"amount": 7},
        "metadata": {},
        "recorded_at": "2026-01-01T00:00:00+00:00",
    }
    assert two["sub"] == 'quote"d'
    assert {k: v for k, v in two.items() if k != "sub"} == {
        k: v for k, v in one.items() if k != "sub"
    }


def test_server_frames() -> None:
    assert json.loads(protocol.subscribed("s", 3)) == {
        "op": "subscribed",
        "id": "s",
        "head_position": 3,
    }
    assert json.loads(protocol.caught_up("s", 9)) == {"op": "caught_up", "sub": "s", "position": 9}
    assert json.loads(protocol.error("bad_frame", "no", "s"))["id"] == "s"
    assert json.loads(protocol.pong()) == {"op": "pong"}
    assert json.loads(protocol.unsubscribed("s")) == {"op": "unsubscribed", "id": "s"}


def test_filters_match_every_given_field() -> None:
    deposit_a = event(1, "account-a", "MoneyDeposited")
    assert Filter().matches(deposit_a)
    assert Filter(streams=frozenset({"account-a"})).matches(deposit_a)
    assert not Filter(streams=frozenset({"account-b"})).matches(deposit_a)
    assert Filter(categories=frozenset({"account"})).matches(deposit_a)
    assert not Filter(categories=frozenset({"transfer"})).matches(deposit_a)
    assert not Filter(
        categories=frozenset({"account"}), types=frozenset({"MoneyWithdrawn"})
    ).matches(deposit_a)


def test_store_reads_are_narrowed_to_the_categories_of_the_streams() -> None:
    assert Filter().read_categories() is None
    assert Filter(streams=frozenset({"account-a", "transfer-1"})).read_categories() == {
        "account",
        "transfer",
    }
    narrowed = Filter(streams=frozenset({"account-a"}), categories=frozenset({"transfer"}))
    assert narrowed.read_categories() == frozenset()
