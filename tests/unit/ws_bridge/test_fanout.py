"""Fan-out: matching subscriptions only, once each, never awaiting a client."""

from __future__ import annotations

from collections import deque

from ws_bridge.fanout import Fanout, Subscription
from ws_bridge.protocol import Filter, encode_event

from .helpers import RecordingSink, event


def _sub(sink: RecordingSink, sub_id: str = "s", **fields: list[str]) -> Subscription:
    filter_ = Filter(**{name: frozenset(values) for name, values in fields.items()})
    return Subscription(sub_id, filter_, sink, pending_limit=10)


def test_each_event_reaches_exactly_the_matching_subscriptions() -> None:
    fanout = Fanout()
    every, by_stream, by_category, by_type, narrow = (RecordingSink() for _ in range(5))
    fanout.add(_sub(every))
    fanout.add(_sub(by_stream, streams=["account-a", "account-b"]))
    fanout.add(_sub(by_category, categories=["transfer"]))
    fanout.add(_sub(by_type, types=["MoneyWithdrawn"]))
    fanout.add(_sub(narrow, streams=["account-a"], types=["MoneyWithdrawn"]))
    events = [
        event(1, "account-a", "MoneyDeposited"),
        event(2, "account-b", "MoneyWithdrawn"),
        event(3, "transfer-1", "TransferRequested"),
        event(4, "account-a", "MoneyWithdrawn"),
    ]
    sent = [fanout.publish(encode_event(e)) for e in events]
    assert every.positions() == [1, 2, 3, 4]
    assert by_stream.positions() == [1, 2, 4]
    assert by_category.positions() == [3]
    assert by_type.positions() == [2, 4]
    assert narrow.positions() == [4]
    assert sent == [2, 3, 2, 4]


def test_a_subscription_never_takes_a_position_twice() -> None:
    fanout, sink = Fanout(), RecordingSink()
    fanout.add(_sub(sink))
    for position in (1, 2, 2, 1, 3):
        fanout.publish(encode_event(event(position)))
    assert sink.positions() == [1, 2, 3]


def test_removed_subscriptions_receive_nothing_more() -> None:
    fanout, sink = Fanout(), RecordingSink()
    sub = _sub(sink, streams=["account-a"])
    fanout.add(sub)
    fanout.publish(encode_event(event(1)))
    fanout.remove(sub)
    fanout.publish(encode_event(event(2)))
    assert sink.positions() == [1]
    assert fanout.count == 0


def test_a_full_client_overflows_without_holding_up_the_others() -> None:
    fanout, slow, fast = Fanout(), RecordingSink(room=2), RecordingSink()
    fanout.add(_sub(slow, "slow"))
    fanout.add(_sub(fast, "fast"))
    for position in range(1, 6):
        fanout.publish(encode_event(event(position)))
    assert slow.overflowed
    assert slow.positions() == [1, 2]
    assert fast.positions() == [1, 2, 3, 4, 5]


def test_a_backfilling_subscription_buffers_live_events_up_to_its_limit() -> None:
    fanout, sink = Fanout(), RecordingSink()
    sub = _sub(sink)
    sub.pending_limit = 2
    sub.cursor = 1
    sub.pending = deque()
    fanout.add(sub)
    for position in (1, 2, 3):
        fanout.publish(encode_event(event(position)))
    assert sink.frames == []
    assert [e.position for e in sub.pending] == [2, 3]
    fanout.publish(encode_event(event(4)))
    assert sink.overflowed
