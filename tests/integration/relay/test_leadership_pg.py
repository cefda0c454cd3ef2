"""The PostgreSQL advisory lock: one leader, a standby that takes over, a leader that
notices when its lock session is gone."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from eventstore.leader import lock_key
from eventstore.relay import PostgresLeadership
from eventstore.urls import parse_database_url
from tests.unit.relay.helpers import wait_until

pytestmark = pytest.mark.postgres


def leadership(pg_url: str) -> PostgresLeadership:
    dsn = parse_database_url(pg_url).dsn
    return PostgresLeadership(dsn, lock_key("pg-test"), retry_interval=0.05, keepalive_interval=0.1)


async def test_one_leader_and_the_standby_takes_over_on_release(pg_url: str) -> None:
    first, second = leadership(pg_url), leadership(pg_url)
    stop = asyncio.Event()
    assert await first.acquire(stop)
    waiting = asyncio.create_task(second.acquire(stop))
    await asyncio.sleep(0.2)  # several tries of the standby must fail
    assert not waiting.done()
    await first.release()
    assert await asyncio.wait_for(waiting, 5)
    await second.release()


async def test_a_leader_whose_session_ends_knows_it_lost_the_lead(pg_url: str) -> None:
    leader, standby = leadership(pg_url), leadership(pg_url)
    stop = asyncio.Event()
    assert await leader.acquire(stop)
    waiting = asyncio.create_task(standby.acquire(stop))
    admin = await asyncpg.connect(parse_database_url(pg_url).dsn)
    try:
        # Only the lock holder in this test's own database: the server is shared.
        ended = await admin.fetchval(
            """SELECT count(pg_terminate_backend(l.pid)) FROM pg_locks l
               JOIN pg_stat_activity a ON a.pid = l.pid
               WHERE l.locktype = 'advisory' AND l.granted
                 AND l.database = (SELECT oid FROM pg_database
                                   WHERE datname = current_database())
                 AND a.application_name = 'chronicle-relay-lock'"""
        )
    finally:
        await admin.close()
    assert ended == 1
    await wait_until(leader.lost.is_set, 5, "the leader to notice")
    assert await asyncio.wait_for(waiting, 5)
    await leader.release()
    await standby.release()


async def test_a_standby_stops_trying_when_told(pg_url: str) -> None:
    leader, standby = leadership(pg_url), leadership(pg_url)
    stop = asyncio.Event()
    assert await leader.acquire(asyncio.Event())
    waiting = asyncio.create_task(standby.acquire(stop))
    stop.set()
    assert await asyncio.wait_for(waiting, 5) is False
    await standby.release()
    await leader.release()
