"""The event store contract, part 1: appending, versions, concurrency and idempotency.

Runs against every backend (SQLite in memory and on file, PostgreSQL): a backend is done
when this suite passes on it.
"""

from __future__ import annotations

import asyncio
import uuid

import pytest

from eventstore import (
    ANY,
    NO_STREAM,
    ConcurrencyError,
    EventIdConflict,
    EventStore,
    NewEvent,
)


def sid(category: str = "account") -> str:
    return f"{category}-{uuid.uuid4().hex}"


def events(*types: str) -> list[NewEvent]:
    return [NewEvent(t, {"n": i}, {"correlation_id": "c-1"}) for i, t in enumerate(types)]


async def test_append_to_new_stream_records_versions_and_positions(store: EventStore) -> None:
    stream = sid()
    result = await store.append(stream, events("Opened", "Deposited"), NO_STREAM)
    assert (result.version, result.replayed) == (2, False)
    assert [e.version for e in result.events] == [1, 2]
    assert result.events[0].position < result.events[1].position == result.position
    assert result.events[0].metadata == {"correlation_id": "c-1"}
    assert await store.stream_version(stream) == 2


async def test_exact_expected_version_appends(store: EventStore) -> None:
    stream = sid()
    await store.append(stream, events("A"), 0)
    result = await store.append(stream, events("B", "C"), 1)
    assert [e.version for e in result.events] == [2, 3]


async def test_wrong_expected_version_raises_with_current(store: EventStore) -> None:
    stream = sid()
    await store.append(stream, events("A", "B"), NO_STREAM)
    with pytest.raises(ConcurrencyError) as raised:
        await store.append(stream, events("C"), 1)
    assert raised.value.current == 2
    assert await store.stream_version(stream) == 2


async def test_no_stream_on_existing_stream_raises(store: EventStore) -> None:
    stream = sid()
    await store.append(stream, events("A"), NO_STREAM)
    with pytest.raises(ConcurrencyError) as raised:
        await store.append(stream, events("B"), NO_STREAM)
    assert raised.value.current == 1


async def test_expecting_a_version_of_a_missing_stream_raises(store: EventStore) -> None:
    with pytest.raises(ConcurrencyError) as raised:
        await store.append(sid(), events("A"), 3)
    assert raised.value.current == 0


async def test_any_appends_whatever_the_version(store: EventStore) -> None:
    stream = sid()
    await store.append(stream, events("A"), ANY)
    result = await store.append(stream, events("B"), ANY)
    assert result.version == 2


async def test_exactly_one_winner_among_concurrent_appends(store: EventStore) -> None:
    stream = sid()
    await store.append(stream, events("Opened"), NO_STREAM)
    attempts = [store.append(stream, events(f"E{i}"), 1) for i in range(12)]
    outcomes = await asyncio.gather(*attempts, return_exceptions=True)
    winners = [o for o in outcomes if not isinstance(o, BaseException)]
    losers = [o for o in outcomes if isinstance(o, BaseException)]
    assert len(winners) == 1
    assert all(isinstance(o, ConcurrencyError) and o.current == 2 for o in losers)
    assert [e.version for e in await store.read_stream(stream)] == [1, 2]


async def test_concurrent_any_appends_all_land_with_dense_versions(store: EventStore) -> None:
    stream = sid()
    await asyncio.gather(*(store.append(stream, events(f"E{i}"), ANY) for i in range(10)))
    recorded = await store.read_stream(stream)
    assert [e.version for e in recorded] == list(range(1, 11))
    assert sorted(e.type for e in recorded) == sorted(f"E{i}" for i in range(10))


async def test_same_ids_same_content_is_replayed_not_written(store: EventStore) -> None:
    stream = sid()
    batch = events("Opened", "Deposited")
    first = await store.append(stream, batch, NO_STREAM)
    assert await store.wait_for_position(first.position, 10)
    head = await store.head_position()
    again = await store.append(stream, batch, NO_STREAM)
    assert again.replayed
    assert [e.position for e in again.events] == [e.position for e in first.events]
    assert again.version == first.version == 2
    assert await store.head_position() == head
    assert len(await store.read_stream(stream)) == 2


async def test_replay_returns_the_originally_recorded_event(store: EventStore) -> None:
    stream = sid()
    original = NewEvent("Opened", {"owner": "ann"}, {"traceparent": "first"})
    await store.append(stream, [original], NO_STREAM)
    retry = NewEvent("Opened", {"owner": "ann"}, {"traceparent": "retry"}, original.event_id)
    again = await store.append(stream, [retry], ANY)
    assert again.replayed
    assert again.events[0].metadata == {"traceparent": "first"}


async def test_same_id_different_data_is_a_conflict(store: EventStore) -> None:
    stream = sid()
    event = NewEvent("Deposited", {"amount": 5})
    await store.append(stream, [event], NO_STREAM)
    clash = NewEvent("Deposited", {"amount": 6}, event_id=event.event_id)
    with pytest.raises(EventIdConflict):
        await store.append(stream, [clash], ANY)
    assert await store.stream_version(stream) == 1


async def test_same_id_on_another_stream_is_a_conflict(store: EventStore) -> None:
    event = NewEvent("Deposited", {"amount": 5})
    await store.append(sid(), [event], NO_STREAM)
    other = sid()
    with pytest.raises(EventIdConflict):
        await store.append(other, [event], NO_STREAM)
    assert await store.stream_version(other) == 0


async def test_batch_mixing_stored_and_new_ids_is_a_conflict(store: EventStore) -> None:
    stream = sid()
    stored = NewEvent("A", {})
    await store.append(stream, [stored], NO_STREAM)
    with pytest.raises(EventIdConflict):
        await store.append(stream, [stored, NewEvent("B", {})], ANY)
    assert await store.stream_version(stream) == 1


async def test_concurrent_retries_of_one_append_write_once(store: EventStore) -> None:
    stream = sid()
    batch = events("Opened")
    results = await asyncio.gather(*(store.append(stream, batch, ANY) for _ in range(8)))
    assert len({r.position for r in results}) == 1
    assert sum(not r.replayed for r in results) == 1
    assert len(await store.read_stream(stream)) == 1
