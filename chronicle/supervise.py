"""Running several long-lived coroutines as one unit: they start together and stop
together, and the first failure stops the rest and is raised."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine, Mapping
from typing import Any

log = logging.getLogger(__name__)

Runner = Callable[[asyncio.Event], Coroutine[Any, Any, None]]
"""Runs until the event it is given is set, then returns promptly."""


async def run_together(stop: asyncio.Event, runners: Mapping[str, Runner]) -> None:
    """Run every runner until ``stop`` is set or one of them ends (returns or raises).

    Then every runner is told to stop (through an event of their own, so ``stop`` is
    left as it was) and awaited. The first error is raised once all have ended.
    """
    done_together = asyncio.Event()
    tasks: dict[asyncio.Task[None], str] = {
        asyncio.create_task(runner(done_together), name=name): name
        for name, runner in runners.items()
    }
    stopper = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait([*tasks, stopper], return_when=asyncio.FIRST_COMPLETED)
    finally:
        done_together.set()
        stopper.cancel()
        results = await asyncio.gather(*tasks, return_exceptions=True)
    errors: list[BaseException] = []
    for name, result in zip(tasks.values(), results, strict=True):
        if isinstance(result, BaseException) and not isinstance(result, asyncio.CancelledError):
            log.error("%s failed: %r", name, result)
            errors.append(result)
    if errors:
        raise errors[0]
    if not stop.is_set():
        raise RuntimeError(f"{', '.join(tasks.values())} ended before being told to stop")
