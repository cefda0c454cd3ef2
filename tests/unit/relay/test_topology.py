"""Broker object names and arguments, and topic routing as the in-process bus does it."""

from __future__ import annotations

import pytest

from eventstore.bus import QueueSpec, Topology
from eventstore.bus.routing import topic_matches


def test_names_start_with_the_prefix() -> None:
    topology = Topology(prefix="t1")
    assert topology.exchange == "t1.events"
    assert topology.broadcast == "t1.broadcast"
    assert topology.queue_name("accounts") == "t1.projection.accounts"


def test_projection_queues_are_quorum_with_a_single_active_consumer() -> None:
    assert Topology.queue_arguments() == {
        "x-queue-type": "quorum",
        "x-single-active-consumer": True,
    }


def test_the_broadcast_is_a_stream_with_bounded_retention() -> None:
    arguments = Topology(stream_max_bytes=10 << 20, stream_segment_bytes=1 << 20).stream_arguments()
    assert arguments["x-queue-type"] == "stream"
    assert arguments["x-max-length-bytes"] == 10 << 20
    assert arguments["x-stream-max-segment-size-bytes"] == 1 << 20
    assert arguments["x-max-age"] == "7D"


@pytest.mark.parametrize(
    "bad",
    [
        {"prefix": ""},
        {"prefix": "a b"},
        {"stream_max_age": "7 days"},
        {"stream_max_bytes": 1, "stream_segment_bytes": 2},
    ],
)
def test_nonsense_is_refused(bad: dict[str, object]) -> None:
    with pytest.raises(ValueError, match=r"prefix|age|segments"):
        Topology(**bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["", "a.b", "a b", "a*"])
def test_queue_names_are_plain(name: str) -> None:
    with pytest.raises(ValueError, match="queue name"):
        QueueSpec(name)


@pytest.mark.parametrize(
    ("pattern", "key", "expected"),
    [
        ("#", "account.Opened", True),
        ("account.*", "account.Opened", True),
        ("account.*", "transfer.Opened", False),
        ("*.Opened", "account.Opened", True),
        ("account.#", "account", True),
        ("account.#", "account.a.b", True),
        ("#.Opened", "account.Opened", True),
        ("account.Opened", "account.Opened", True),
        ("account.Opened", "account.Closed", False),
        ("*", "account.Opened", False),
        ("a.*.c", "a.b.c", True),
        ("a.*.c", "a.c", False),
    ],
)
def test_topic_routing(pattern: str, key: str, expected: bool) -> None:
    assert topic_matches(pattern, key) is expected
