"""Work done while leading: cut the moment the lead is lost, drained after a stop."""

from __future__ import annotations

import asyncio

import pytest

from eventstore.leader import while_leading


async def test_work_is_cancelled_the_moment_the_lead_is_lost() -> None:
    lost, steps = asyncio.Event(), []

    async def work() -> None:
        while True:
            steps.append(len(steps))
            if len(steps) == 3:
                lost.set()
            await asyncio.sleep(0)

    await asyncio.wait_for(while_leading(work(), lost), 5)
    # Each step after the loss yields to the loop; the cancel lands within a step or two.
    assert len(steps) <= 5


async def test_what_the_work_raises_is_raised() -> None:
    async def work() -> None:
        raise RuntimeError("a bug in the follow loop")

    with pytest.raises(RuntimeError, match="follow loop"):
        await while_leading(work(), asyncio.Event())


async def test_after_a_stop_the_work_drains_within_its_bound() -> None:
    stop, finished = asyncio.Event(), []

    async def draining(seconds: float) -> None:
        await stop.wait()
        await asyncio.sleep(seconds)  # flushing what is in flight
        finished.append(seconds)

    stop.set()
    await while_leading(draining(0.01), asyncio.Event(), stop=stop, drain=5)
    await asyncio.wait_for(while_leading(draining(60), asyncio.Event(), stop=stop, drain=0.05), 5)
    assert finished == [0.01]


async def test_a_caller_cancelled_while_the_work_winds_down_stays_cancelled() -> None:
    lost, wound_down = asyncio.Event(), asyncio.Event()

    async def work() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            await asyncio.sleep(0.05)  # e.g. saving a checkpoint as it stops
            wound_down.set()

    leading = asyncio.create_task(while_leading(work(), lost))
    await asyncio.sleep(0)
    lost.set()
    await asyncio.sleep(0.01)  # the work is now winding down
    leading.cancel()
    with pytest.raises(asyncio.CancelledError):
        await leading
    assert leading.cancelled()
    await asyncio.wait_for(wound_down.wait(), 5)  # the work still finished its own way
