"""The in-process append signal: wakes waiters early, times out, never eats a cancel."""

from __future__ import annotations

import asyncio

import pytest

from eventstore.signal import AppendSignal


async def test_notify_wakes_a_waiter_before_its_time_is_up() -> None:
    signal = AppendSignal()
    waiter = asyncio.create_task(signal.wait(30))
    await asyncio.sleep(0)
    signal.notify()
    await asyncio.wait_for(waiter, 1)


async def test_wait_returns_after_max_wait_without_notify() -> None:
    loop = asyncio.get_running_loop()
    started = loop.time()
    await AppendSignal().wait(0.05)
    assert loop.time() - started >= 0.04


async def test_a_cancel_arriving_with_a_notify_still_cancels() -> None:
    signal = AppendSignal()
    for _ in range(50):
        waiter = asyncio.create_task(signal.wait(30))
        await asyncio.sleep(0)
        signal.notify()
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
