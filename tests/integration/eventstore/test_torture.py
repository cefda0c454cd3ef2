"""Torture test of the read order on PostgreSQL.

Eight writers append concurrently, some in explicit transactions that take their
transaction id early and commit late (so id order differs from commit order), a fifth of
those roll back, and an unrelated write transaction stays open for seconds. Several
readers tail ``read_all`` throughout. Every reader must see every committed event exactly
once, no rolled-back event, with strictly increasing positions. A naive reader (``position
> last`` without the fence) runs alongside to show the workload really provokes skips.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from dataclasses import dataclass, field

import asyncpg
import pytest

from eventstore import ANY, EventStore, NewEvent, open_event_store
from eventstore.limits import Limits, encode_events
from eventstore.pg_append import AppendRequest, statement

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

WRITERS = 8
READERS = 3
DURATION = 6.0
LONG_TRANSACTION = 3.0


@dataclass
class Outcome:
    committed: set[uuid.UUID] = field(default_factory=set)
    rolled_back: set[uuid.UUID] = field(default_factory=set)


async def raw_append(conn: asyncpg.Connection, rng: random.Random, outcome: Outcome) -> None:
    """Append inside an explicit transaction that takes its id early and may roll back."""
    ids = [uuid.uuid4() for _ in range(rng.randint(1, 3))]
    stream = f"torture-{rng.randint(1, 40)}"
    tx = conn.transaction()
    await tx.start()
    try:
        if rng.random() < 0.5:
            await conn.fetchval("SELECT pg_current_xact_id()")
            await asyncio.sleep(rng.uniform(0, 0.02))
        events = encode_events(
            [NewEvent("Tortured", {"n": i}, {}, id_) for i, id_ in enumerate(ids)], Limits()
        )
        requests = [AppendRequest(stream, None, events)]
        if rng.random() < 0.5:  # the group form, with a second stream in the same statement
            more = [NewEvent("Tortured", {"n": 0}, {}, uuid.uuid4())]
            ids.append(more[0].event_id)
            requests.append(AppendRequest(f"{stream}x", None, encode_events(more, Limits())))
        sql, args = statement(requests)
        await conn.fetch(sql, *args)
        await asyncio.sleep(rng.uniform(0, 0.005))
    except asyncpg.UniqueViolationError:
        await tx.rollback()  # lost a version race: nothing committed
        return
    if rng.random() < 0.2:
        await tx.rollback()
        outcome.rolled_back.update(ids)
    else:
        await tx.commit()
        outcome.committed.update(ids)


async def writer(url: str, store: EventStore, seed: int, deadline: float, out: Outcome) -> None:
    rng = random.Random(seed)
    conn = await asyncpg.connect(url)
    try:
        while time.monotonic() < deadline:
            if rng.random() < 0.5:
                await raw_append(conn, rng, out)
            else:
                events = [NewEvent("Tortured", {"n": i}) for i in range(rng.randint(1, 3))]
                result = await store.append(f"torture-{rng.randint(1, 40)}", events, ANY)
                out.committed.update(e.event_id for e in result.events)
    finally:
        await conn.close()


async def long_open_transaction(url: str) -> None:
    """An unrelated write transaction (it has an id) held open for seconds."""
    conn = await asyncpg.connect(url)
    try:
        async with conn.transaction():
            await conn.fetchval("SELECT pg_current_xact_id()")
            await asyncio.sleep(LONG_TRANSACTION)
    finally:
        await conn.close()


async def reader(store: EventStore, seed: int, done: asyncio.Event) -> list[tuple[int, uuid.UUID]]:
    rng = random.Random(seed)
    seen: list[tuple[int, uuid.UUID]] = []
    last = 0
    while True:
        batch = await store.read_all(last, rng.randint(1, 50))
        seen += [(e.position, e.event_id) for e in batch]
        last = seen[-1][0] if seen else 0
        if not batch:
            if done.is_set():
                return seen
            await asyncio.sleep(rng.uniform(0, 0.003))


async def naive_reader(url: str, done: asyncio.Event) -> set[uuid.UUID]:
    conn = await asyncpg.connect(url)
    seen: set[uuid.UUID] = set()
    last = 0
    try:
        while not done.is_set():
            rows = await conn.fetch(
                "SELECT position, event_id FROM chronicle_events WHERE position > $1"
                " ORDER BY position LIMIT 100",
                last,
            )
            seen.update(r["event_id"] for r in rows)
            last = rows[-1]["position"] if rows else last
            await asyncio.sleep(0.001)
    finally:
        await conn.close()
    return seen


async def test_every_committed_event_is_read_once_in_order(pg_url: str) -> None:
    store = await open_event_store(pg_url, pool_size=WRITERS + READERS + 2)
    outcome = Outcome()
    done = asyncio.Event()
    try:
        readers = [asyncio.create_task(reader(store, i, done)) for i in range(READERS)]
        naive = asyncio.create_task(naive_reader(pg_url, done))
        deadline = time.monotonic() + DURATION
        await asyncio.gather(
            long_open_transaction(pg_url),
            *(writer(pg_url, store, seed, deadline, outcome) for seed in range(WRITERS)),
        )
        await wait_until_readable(store, outcome)
        done.set()
        results = await asyncio.wait_for(asyncio.gather(*readers), 30)
        naive_seen = await naive
    finally:
        await store.close()
    assert len(outcome.committed) > 500, "the workload was too small to mean anything"
    for seen in results:
        ids = [event_id for _, event_id in seen]
        assert len(ids) == len(set(ids)), "a reader saw an event twice"
        assert set(ids) == outcome.committed, "a reader missed a committed event"
        positions = [position for position, _ in seen]
        assert positions == sorted(set(positions)), "positions did not strictly increase"
        assert not set(ids) & outcome.rolled_back
    assert outcome.committed - naive_seen, "the naive reader skipped nothing: no real race"


async def wait_until_readable(store: EventStore, outcome: Outcome) -> None:
    """Wait (bounded) until every committed event is behind the read fence."""
    async with asyncio.timeout(30):
        while True:
            head = await store.head_position()
            everything = await store.read_all(0, 1_000_000)
            if head and {e.event_id for e in everything} >= outcome.committed:
                return
            await asyncio.sleep(0.05)
