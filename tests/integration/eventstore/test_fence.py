"""The read fence on PostgreSQL: an older open transaction delays readers, and when it
ends every event appended meanwhile becomes readable, in order, none lost."""

from __future__ import annotations

import asyncpg
import pytest

from eventstore import NewEvent, open_event_store

pytestmark = pytest.mark.postgres


async def test_an_open_older_transaction_delays_but_never_loses(pg_url: str) -> None:
    store = await open_event_store(pg_url)
    blocker = await asyncpg.connect(pg_url)
    try:
        before = await store.append("account-1", [NewEvent("A", {"i": 0})])
        assert await store.wait_for_position(before.position, 10)
        tx = blocker.transaction()
        await tx.start()
        await blocker.fetchval("SELECT pg_current_xact_id()")  # an older transaction id
        later = [await store.append(f"account-{i}", [NewEvent("B", {"i": i})]) for i in range(5)]
        assert not await store.wait_for_position(later[0].position, 0.3)
        assert [e.position for e in await store.read_all(0)] == [before.position]
        await tx.commit()
        assert await store.wait_for_position(later[-1].position, 10)
        read = await store.read_all(before.position)
        assert [e.position for e in read] == [r.position for r in later]
    finally:
        await blocker.close()
        await store.close()
