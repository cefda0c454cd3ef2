"""The ordering stall on PostgreSQL: an open write transaction anywhere on the server
holds the read fence, and the probe's gauge shows its age growing."""

from __future__ import annotations

import asyncpg
import pytest

from eventstore import open_event_store
from eventstore.probe import LogProbe
from tests.integration.observability.pipeline import wait_for

pytestmark = pytest.mark.postgres


async def test_an_open_write_transaction_shows_as_a_growing_stall(pg_url: str) -> None:
    store = await open_event_store(pg_url)
    holder = await asyncpg.connect(pg_url)
    try:
        probe = LogProbe(store, {})
        transaction = holder.transaction()
        await transaction.start()
        await holder.fetchval("SELECT txid_current()")  # takes an xid: a writer now
        age = "chronicle_log_oldest_write_transaction_seconds"

        async def stalled() -> bool:
            await probe.sample()
            value = probe.registry.get_sample_value(age)
            return value is not None and value >= 0.3

        await wait_for(stalled, 10, "the stall gauge to pass 0.3 s")
        seen = await store.oldest_write_age()
        await transaction.rollback()
        assert seen >= 0.3
    finally:
        await holder.close()
        await store.close()
