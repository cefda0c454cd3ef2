"""Read-your-writes: wait, bounded, until a read model has applied a position.

A client that wrote at position N (the command API returns it) asks with
``?min_position=N``. The query polls its own answer: the projection's checkpoint and
the rows, read on one connection, until that checkpoint reaches N. On a streaming
replica the checkpoint row and the read model arrive in the same replayed transaction,
so once the replica's checkpoint reaches N its rows include N's effect, however far
behind the primary it is; and with several replicas behind one service, the answer
comes from one that has N, whichever the wait happened to poll before.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

_FIRST_DELAY = 0.002
_MAX_DELAY = 0.05


@dataclass(frozen=True, slots=True)
class Reached:
    """The position a read model had when the answer was read, and ``stale`` when it had
    not reached the requested one within the wait."""

    position: int
    stale: bool = False


async def wait_for_position(
    current: Callable[[], Awaitable[int]], min_position: int | None, max_wait: float
) -> Reached:
    """Poll ``current()`` until it is at least ``min_position`` or ``max_wait`` seconds pass.

    Without ``min_position`` it reads the position once. On timeout the answer is the
    last position seen, marked stale; it never raises for lateness.
    """
    position = await current()
    if min_position is None or position >= min_position:
        return Reached(position)
    deadline = time.monotonic() + max_wait
    delay = _FIRST_DELAY
    while (left := deadline - time.monotonic()) > 0:
        await asyncio.sleep(min(delay, left))
        position = await current()
        if position >= min_position:
            return Reached(position)
        delay = min(delay * 2, _MAX_DELAY)
    return Reached(position, stale=True)
