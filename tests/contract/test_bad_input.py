"""The event store contract, part 3: every bad input is a clear error and writes nothing."""

from __future__ import annotations

import math
from typing import Any

import pytest

from eventstore import (
    BatchTooLarge,
    EventStore,
    InvalidAppend,
    InvalidEvent,
    InvalidStreamId,
    InvalidVersion,
    NewEvent,
)

GOOD = "account-1"


def ev(data: Any = None, metadata: Any = None, type_: Any = "Deposited") -> NewEvent:
    return NewEvent(type_, {"amount": 1} if data is None else data, metadata or {})


BAD_STREAM_IDS = ["", "x" * 201, "account-\x00", "account-\n1", None, 42]

BAD_EVENTS = [
    ev(data=[1, 2]),
    ev(data="string"),
    ev(data={"set": {1, 2}}),
    ev(data={"bytes": b"raw"}),
    ev(data={"nan": math.nan}),
    ev(data={"inf": math.inf}),
    ev(data={"nul": "a\x00b"}),
    ev(metadata={"nul\x00key": "v"}),
    ev(data={"lone": "\ud800"}),
    ev(type_=""),
    ev(type_="T" * 201),
    ev(type_="Bad\ntype"),
    ev(type_=None),
]


async def assert_nothing_written(store: EventStore) -> None:
    assert await store.head_position() == 0
    assert await store.read_all() == []


@pytest.mark.parametrize("stream_id", BAD_STREAM_IDS)
async def test_bad_stream_id(store: EventStore, stream_id: Any) -> None:
    with pytest.raises(InvalidStreamId):
        await store.append(stream_id, [ev()])
    await assert_nothing_written(store)


@pytest.mark.parametrize("event", BAD_EVENTS, ids=range(len(BAD_EVENTS)))
async def test_bad_event(store: EventStore, event: NewEvent) -> None:
    with pytest.raises(InvalidEvent):
        await store.append(GOOD, [ev(), event])
    await assert_nothing_written(store)


async def test_not_a_new_event(store: EventStore) -> None:
    with pytest.raises(InvalidEvent):
        await store.append(GOOD, [{"type": "Deposited", "data": {}}])  # type: ignore[list-item]
    await assert_nothing_written(store)


async def test_event_over_the_size_limit(store: EventStore) -> None:
    too_big = {"blob": "x" * store.limits.max_event_bytes}
    with pytest.raises(InvalidEvent, match="bytes"):
        await store.append(GOOD, [ev(data=too_big)])
    await assert_nothing_written(store)


async def test_batch_over_the_count_limit(store: EventStore) -> None:
    with pytest.raises(BatchTooLarge):
        await store.append(GOOD, [ev() for _ in range(store.limits.max_batch + 1)])
    await assert_nothing_written(store)


async def test_empty_batch(store: EventStore) -> None:
    with pytest.raises(InvalidEvent):
        await store.append(GOOD, [])
    await assert_nothing_written(store)


async def test_duplicate_ids_in_one_batch(store: EventStore) -> None:
    event = ev()
    with pytest.raises(InvalidEvent):
        await store.append(GOOD, [event, event])
    await assert_nothing_written(store)


@pytest.mark.parametrize("expected", [-1, -100, True, 1.5, "3"])
async def test_bad_expected_version(store: EventStore, expected: Any) -> None:
    with pytest.raises(InvalidVersion):
        await store.append(GOOD, [ev()], expected)
    await assert_nothing_written(store)


async def test_negative_read_arguments(store: EventStore) -> None:
    with pytest.raises(InvalidVersion):
        await store.read_all(-1)
    with pytest.raises(InvalidVersion):
        await store.read_all(0, -5)
    with pytest.raises(InvalidVersion):
        await store.read_stream(GOOD, -1)
    with pytest.raises(InvalidVersion):
        await store.save_checkpoint("x", -1)


def test_every_bad_input_error_is_an_invalid_append() -> None:
    for error in (InvalidStreamId, InvalidEvent, InvalidVersion, BatchTooLarge):
        assert issubclass(error, InvalidAppend)
        assert issubclass(error, ValueError)
