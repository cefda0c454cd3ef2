"""The checkpoint's one-statement lock-and-move on PostgreSQL: it waits for a concurrent
writer of the row and sees what that writer committed, never moves back, and rolls
back with the transaction it belongs to."""

from __future__ import annotations

import asyncio

import pytest

from projections.checkpoints import advance_checkpoint, ensure_checkpoint, read_checkpoint
from projections.db import open_engine

pytestmark = pytest.mark.postgres


async def test_advance_waits_for_a_concurrent_writer_and_sees_its_commit(pg_url: str) -> None:
    engine = open_engine(pg_url, writer=True)
    try:
        async with engine.begin() as conn:
            await ensure_checkpoint(conn, "p")
        async with engine.connect() as first, engine.connect() as second:
            await first.begin()
            assert await advance_checkpoint(first, "p", 10) == 0
            await second.begin()
            waiting = asyncio.create_task(advance_checkpoint(second, "p", 5))
            await asyncio.sleep(0.2)
            assert not waiting.done()
            await first.commit()
            # The second writer saw 10 (so it drops events 6..10 as duplicates) and
            # left the checkpoint where the first one put it.
            assert await waiting == 10
            await second.commit()
        async with engine.connect() as conn:
            assert await read_checkpoint(conn, "p") == 10
    finally:
        await engine.dispose()


async def test_advance_rolls_back_with_its_transaction(pg_url: str) -> None:
    engine = open_engine(pg_url, writer=True)
    try:
        async with engine.begin() as conn:
            await ensure_checkpoint(conn, "p")
            assert await advance_checkpoint(conn, "p", 7) == 0
        async with engine.connect() as conn:
            await conn.begin()
            assert await advance_checkpoint(conn, "p", 9) == 7
            await conn.rollback()
        async with engine.begin() as conn:
            assert await advance_checkpoint(conn, "p", 3) == 7
        async with engine.connect() as conn:
            assert await read_checkpoint(conn, "p") == 7
        async with engine.begin() as conn:
            with pytest.raises(LookupError):
                await advance_checkpoint(conn, "missing", 1)
    finally:
        await engine.dispose()
