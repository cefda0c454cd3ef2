"""In-process wake-up for subscribers: appends in this process end their wait early."""

from __future__ import annotations

import asyncio
import contextlib


class AppendSignal:
    """A broadcast "something was appended" flag that any number of waiters can await."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def notify(self) -> None:
        """Wake every current waiter; later waiters wait for the next notify."""
        event, self._event = self._event, asyncio.Event()
        event.set()

    async def wait(self, max_wait: float) -> None:
        """Return after ``max_wait`` seconds or at the next notify, whichever is first.

        A cancellation of the waiting task always propagates (``asyncio.timeout`` tells
        its own expiry from an outside cancel, which ``wait_for`` on 3.11 may swallow).
        """
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(max_wait):
                await self._event.wait()
