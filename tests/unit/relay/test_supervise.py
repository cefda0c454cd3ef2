"""Processes run together start together, stop together, and fail together."""

from __future__ import annotations

import asyncio

import pytest

from chronicle.supervise import run_together


async def test_all_stop_when_stop_is_set() -> None:
    stop = asyncio.Event()
    stopped: list[str] = []

    def runner(name: str):  # type: ignore[no-untyped-def]
        async def run(local: asyncio.Event) -> None:
            await local.wait()
            stopped.append(name)

        return run

    task = asyncio.create_task(run_together(stop, {"a": runner("a"), "b": runner("b")}))
    await asyncio.sleep(0)
    stop.set()
    await asyncio.wait_for(task, 1)
    assert sorted(stopped) == ["a", "b"]


async def test_the_first_failure_stops_the_others_and_is_raised() -> None:
    stopped = asyncio.Event()

    async def fails(_: asyncio.Event) -> None:
        raise OSError("port in use")

    async def waits(local: asyncio.Event) -> None:
        await local.wait()
        stopped.set()

    with pytest.raises(OSError, match="port in use"):
        await asyncio.wait_for(run_together(asyncio.Event(), {"x": fails, "y": waits}), 1)
    assert stopped.is_set()


async def test_ending_early_is_an_error() -> None:
    async def quits(_: asyncio.Event) -> None:
        return None

    with pytest.raises(RuntimeError, match="ended before"):
        await asyncio.wait_for(run_together(asyncio.Event(), {"q": quits}), 1)
