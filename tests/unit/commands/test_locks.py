"""Per-stream locks: one command at a time per stream, none across streams, no leak."""

from __future__ import annotations

import asyncio

import pytest

from commands.service.locks import StreamLocks


async def test_one_stream_runs_one_at_a_time_and_others_do_not_wait() -> None:
    locks = StreamLocks()
    inside: list[str] = []
    release = asyncio.Event()

    async def hold(stream: str) -> None:
        async with locks.hold(stream):
            inside.append(stream)
            await release.wait()

    tasks = [asyncio.create_task(hold(s)) for s in ("a", "a", "b")]
    for _ in range(5):
        await asyncio.sleep(0)
    assert sorted(inside) == ["a", "b"]
    release.set()
    await asyncio.gather(*tasks)
    assert sorted(inside) == ["a", "a", "b"]
    assert len(locks) == 0


async def test_errors_and_cancellation_release_the_lock() -> None:
    locks = StreamLocks()
    with pytest.raises(RuntimeError):
        async with locks.hold("a"):
            raise RuntimeError
    blocker = asyncio.Event()

    async def wait_forever() -> None:
        async with locks.hold("a"):
            await blocker.wait()

    first = asyncio.create_task(wait_forever())
    second = asyncio.create_task(wait_forever())
    await asyncio.sleep(0)
    second.cancel()
    first.cancel()
    await asyncio.gather(first, second, return_exceptions=True)
    assert len(locks) == 0
    async with locks.hold("a"):
        pass
