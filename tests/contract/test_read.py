"""The event store contract, part 2: reading streams and the global log, filters,
payloads, checkpoints and the live subscription."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from eventstore import NO_STREAM, AppendResult, EventStore, InvalidVersion, NewEvent, category_of


def cat() -> str:
    return f"c{uuid.uuid4().hex[:10]}"


async def readable(store: EventStore, result: AppendResult) -> None:
    """Wait until the global order shows ``result`` (older transactions anywhere on the
    server delay it; see docs/eventstore.md)."""
    assert await store.wait_for_position(result.position, 10)


async def test_empty_store(store: EventStore) -> None:
    assert await store.head_position() == 0
    assert await store.read_all() == []
    assert await store.read_stream("account-missing") == []
    assert await store.stream_version("account-missing") == 0


async def test_read_all_is_in_commit_order_with_increasing_positions(store: EventStore) -> None:
    appended = []
    for i in range(5):
        result = await store.append(f"account-{i}", [NewEvent("A", {"i": i})] * 1, NO_STREAM)
        appended.extend(result.events)
    await readable(store, result)
    read = await store.read_all()
    assert [e.event_id for e in read] == [e.event_id for e in appended]
    positions = [e.position for e in read]
    assert positions == sorted(set(positions))
    assert await store.head_position() == positions[-1]


async def test_read_all_pages_with_after_position_and_limit(store: EventStore) -> None:
    await readable(
        store, await store.append("account-1", [NewEvent("A", {"i": i}) for i in range(7)])
    )
    first = await store.read_all(0, 3)
    second = await store.read_all(first[-1].position, 3)
    third = await store.read_all(second[-1].position, 3)
    assert [e.data["i"] for e in first + second + third] == list(range(7))
    assert await store.read_all(third[-1].position) == []


async def test_read_all_filters_by_category_and_type(store: EventStore) -> None:
    a, b = cat(), cat()
    await store.append(f"{a}-1", [NewEvent("X", {}), NewEvent("Y", {})], NO_STREAM)
    await store.append(f"{b}-1", [NewEvent("X", {})], NO_STREAM)
    await readable(store, await store.append(f"{a}-2", [NewEvent("Y", {})], NO_STREAM))
    only_a = await store.read_all(categories=[a])
    assert [(e.stream_id, e.type) for e in only_a] == [
        (f"{a}-1", "X"),
        (f"{a}-1", "Y"),
        (f"{a}-2", "Y"),
    ]
    only_y = await store.read_all(types=["Y"])
    assert [e.stream_id for e in only_y] == [f"{a}-1", f"{a}-2"]
    both = await store.read_all(categories=[a, b], types=["X"])
    assert [e.stream_id for e in both] == [f"{a}-1", f"{b}-1"]
    assert await store.read_all(categories=[]) == []


async def test_category_is_the_part_before_the_first_dash(store: EventStore) -> None:
    result = await store.append("account-42-extra", [NewEvent("A", {})], NO_STREAM)
    await readable(store, result)
    assert result.events[0].category == "account" == category_of("account-42-extra")
    assert category_of("nodash") == "nodash"
    assert [e.stream_id for e in await store.read_all(categories=["nodash"])] == []


async def test_read_stream_forwards_backwards_and_limited(store: EventStore) -> None:
    stream = "account-7"
    await store.append(stream, [NewEvent("A", {"i": i}) for i in range(1, 6)], NO_STREAM)
    assert [e.version for e in await store.read_stream(stream)] == [1, 2, 3, 4, 5]
    assert [e.version for e in await store.read_stream(stream, 3)] == [3, 4, 5]
    assert [e.version for e in await store.read_stream(stream, 2, limit=2)] == [2, 3]
    backwards = await store.read_stream(stream, backwards=True, limit=2)
    assert [e.version for e in backwards] == [5, 4]
    assert [e.version for e in await store.read_stream(stream, 2, backwards=True)] == [2, 1]


async def test_unicode_and_nested_payloads_round_trip(store: EventStore) -> None:
    data = {
        "owner": "Zoë Ångström 李小龍 🚀 مرحبا",
        "nested": {"list": [1, 2.5, None, True, {"deep": ["x"]}], "empty": {}},
        "big": 2**62,
        "escaped": 'quote " backslash \\ tab \t newline \n',
    }
    result = await store.append("account-ü", [NewEvent("Öffnet", data, {"actor": "ß"})])
    await readable(store, result)
    read = (await store.read_all())[0]
    assert read.data == data == result.events[0].data
    assert read.metadata == {"actor": "ß"}
    assert read.stream_id == "account-ü"
    assert read.type == "Öffnet"


async def test_payload_just_under_the_limit_is_stored(store: EventStore) -> None:
    limit = store.limits.max_event_bytes
    data = {"blob": "é" * ((limit - 100) // 2)}
    await store.append("account-big", [NewEvent("Big", data)])
    assert (await store.read_stream("account-big"))[0].data == data


async def test_subscribe_catches_up_then_follows_live(store: EventStore) -> None:
    await store.append("account-1", [NewEvent("A", {"i": 0}), NewEvent("A", {"i": 1})])
    seen: list[int] = []

    async def follow() -> None:
        async for event in store.subscribe(0):
            seen.append(event.data["i"])
            if len(seen) == 4:
                return

    task = asyncio.create_task(follow())
    await store.append("account-2", [NewEvent("A", {"i": 2})])
    await store.append("account-1", [NewEvent("A", {"i": 3})])
    await asyncio.wait_for(task, 10)
    assert seen == [0, 1, 2, 3]


async def test_subscribe_with_filters_and_start_position(store: EventStore) -> None:
    a = cat()
    first = await store.append(f"{a}-1", [NewEvent("X", {"i": 0})])
    await store.append(f"{a}-1", [NewEvent("Y", {"i": 1}), NewEvent("X", {"i": 2})])
    await store.append("other-1", [NewEvent("X", {"i": 3})])
    stream = store.subscribe(first.position, categories=[a], types=["X"])
    event = await asyncio.wait_for(anext(stream), 10)
    assert event.data == {"i": 2}
    await stream.aclose()


async def test_checkpoints_are_durable_and_never_go_back(store: EventStore) -> None:
    assert await store.load_checkpoint("relay") == 0
    await store.save_checkpoint("relay", 10)
    await store.save_checkpoint("relay", 10)
    await store.save_checkpoint("relay", 12)
    assert await store.load_checkpoint("relay") == 12
    with pytest.raises(InvalidVersion):
        await store.save_checkpoint("relay", 11)
    assert await store.load_checkpoint("relay") == 12
    assert await store.load_checkpoint("other") == 0


async def test_wait_for_position_gives_up_after_max_wait(store: EventStore) -> None:
    result = await store.append("account-1", [NewEvent("A", {})])
    assert await store.wait_for_position(result.position, 10)
    assert not await store.wait_for_position(result.position + 10**6, 0.05)
