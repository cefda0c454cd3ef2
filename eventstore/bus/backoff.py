"""Exponential back-off with jitter, for reconnecting to the broker and the database."""

from __future__ import annotations

import asyncio
import contextlib
import random
from dataclasses import dataclass, field


@dataclass
class Backoff:
    """Delays from ``initial`` doubling up to ``maximum``, each shortened by up to
    ``jitter`` (a fraction) so that many clients do not retry in lockstep."""

    initial: float = 0.1
    maximum: float = 5.0
    jitter: float = 0.2
    _next: float = field(default=0.0, init=False)

    def __post_init__(self) -> None:
        if not 0 < self.initial <= self.maximum or not 0 <= self.jitter < 1:
            raise ValueError("back-off needs 0 < initial <= maximum and 0 <= jitter < 1")
        self._next = self.initial

    def reset(self) -> None:
        """Back to the initial delay (after a success)."""
        self._next = self.initial

    def next_delay(self) -> float:
        delay = self._next * (1 - self.jitter * random.random())  # noqa: S311 - not crypto
        self._next = min(self._next * 2, self.maximum)
        return delay

    async def wait(self, stop: asyncio.Event | None = None) -> bool:
        """Sleep the next delay; return False at once if ``stop`` is set meanwhile."""
        delay = self.next_delay()
        if stop is None:
            await asyncio.sleep(delay)
            return True
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), delay)
        return not stop.is_set()
