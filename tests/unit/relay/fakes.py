"""Fakes of the relay's own interfaces (Publisher, Leadership) for unit tests."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from eventstore.bus import BusUnavailable, Envelope


class RecordingPublisher:
    """Confirms everything at once and records what was published, call by call."""

    def __init__(self) -> None:
        self.calls: list[list[Envelope]] = []
        self.published = asyncio.Event()

    async def publish(self, messages: Sequence[Envelope]) -> None:
        self.calls.append(list(messages))
        self.published.set()

    @property
    def envelopes(self) -> list[Envelope]:
        return [envelope for call in self.calls for envelope in call]

    @property
    def positions(self) -> list[int]:
        return [envelope.position for envelope in self.envelopes]


class GatedPublisher(RecordingPublisher):
    """Records a call at once but confirms it only when the test opens the gate."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()
        self.in_flight = 0
        self.most_in_flight = 0

    async def publish(self, messages: Sequence[Envelope]) -> None:
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            await super().publish(messages)
            await self.gate.wait()
        finally:
            self.in_flight -= 1


class FailingPublisher(RecordingPublisher):
    """Fails the calls whose numbers (1-based) are in ``failures``, like a broker that
    dropped the connection before confirming."""

    def __init__(self, failures: set[int]) -> None:
        super().__init__()
        self.failures = failures
        self.attempts = 0

    async def publish(self, messages: Sequence[Envelope]) -> None:
        self.attempts += 1
        if self.attempts in self.failures:
            raise BusUnavailable(f"attempt {self.attempts} failed (test)")
        await super().publish(messages)


class SwitchLeadership:
    """A lead the test grants and takes away."""

    def __init__(self) -> None:
        self.granted = asyncio.Event()
        self._lost = asyncio.Event()
        self.acquired = 0
        self.released = 0

    @property
    def lost(self) -> asyncio.Event:
        return self._lost

    async def acquire(self, stop: asyncio.Event) -> bool:
        waiters = [asyncio.ensure_future(self.granted.wait()), asyncio.ensure_future(stop.wait())]
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        for waiter in waiters:
            waiter.cancel()
        if stop.is_set():
            return False
        self._lost = asyncio.Event()
        self.acquired += 1
        return True

    async def release(self) -> None:
        self.released += 1

    def take_away(self) -> None:
        self.granted.clear()
        self._lost.set()
