"""Appends PostgreSQL must not take, or cannot take now.

Positions are made of PostgreSQL transaction ids. A log restored into another
cluster, whose ids are behind the old one's, would give new events positions below
the head, which every reader skips: the store refuses to append then. A server that
turned read-only (a failover) is unavailable, to be retried, not an error."""

from __future__ import annotations

import asyncpg
import pytest

from eventstore import NewEvent, PositionsBehind, StoreUnavailable, open_event_store

pytestmark = pytest.mark.postgres

SHIFT = 1 << 50


async def test_appends_are_refused_while_the_log_is_ahead_of_the_transaction_ids(
    pg_url: str,
) -> None:
    first = await open_event_store(pg_url)
    try:
        await first.append("account-1", [NewEvent("Opened", {})])
    finally:
        await first.close()
    conn = await asyncpg.connect(pg_url)
    try:
        # As a log copied from a cluster that had used 2^34 more transaction ids.
        await conn.execute(f"UPDATE chronicle_events SET position = position + {SHIFT}")
        restored = await open_event_store(pg_url)
        try:
            with pytest.raises(PositionsBehind, match="pg_resetwal"):
                await restored.append("account-2", [NewEvent("Opened", {})])
            assert await conn.fetchval("SELECT count(*) FROM chronicle_events") == 1
            # Once the log is below the cluster's ids again, appends go through.
            await conn.execute(f"UPDATE chronicle_events SET position = position - {SHIFT}")
            appended = await restored.append("account-2", [NewEvent("Opened", {})])
            assert appended.position > await conn.fetchval(
                "SELECT min(position) FROM chronicle_events"
            )
        finally:
            await restored.close()
    finally:
        await conn.close()


async def test_a_read_only_server_makes_the_store_unavailable_not_broken(pg_url: str) -> None:
    # As a primary demoted during a failover: new sessions are read-only.
    name = pg_url.rsplit("/", 1)[1]
    admin = await asyncpg.connect(pg_url)
    try:
        await admin.execute(f'ALTER DATABASE "{name}" SET default_transaction_read_only = on')
        store = await open_event_store(pg_url)
        try:
            with pytest.raises(StoreUnavailable):
                await store.append("account-1", [NewEvent("Opened", {})])
        finally:
            await store.close()
    finally:
        await admin.execute(f'ALTER DATABASE "{name}" RESET default_transaction_read_only')
        await admin.close()
