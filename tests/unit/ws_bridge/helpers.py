"""Fakes of the bridge's own interfaces, and event builders, for unit tests."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

from eventstore.model import RecordedEvent


def event(position: int, stream: str = "account-a", type_: str = "MoneyDeposited") -> RecordedEvent:
    return RecordedEvent(
        event_id=uuid4(),
        stream_id=stream,
        version=1,
        position=position,
        type=type_,
        data={"amount": position},
        metadata={},
        recorded_at=datetime(2026, 1, 1, tzinfo=UTC),
    )


class RecordingSink:
    """A client that records frames; ``room`` bounds what it takes before overflowing."""

    def __init__(self, room: int = 1_000_000) -> None:
        self.frames: list[dict[str, Any]] = []
        self.room = room
        self.overflowed = False

    def push(self, frame: bytes, batch: object = None) -> bool:
        if self.overflowed:
            return False
        if len(self.frames) >= self.room:
            self.overflow()
            return False
        self.frames.append(json.loads(frame))
        return True

    async def put(self, frame: bytes) -> None:
        self.frames.append(json.loads(frame))

    def put_nowait(self, frame: bytes) -> None:
        self.frames.append(json.loads(frame))

    def overflow(self) -> None:
        self.overflowed = True

    def positions(self, op: str = "event") -> list[int]:
        return [f["position"] for f in self.frames if f["op"] == op]


class FullSink(RecordingSink):
    """A client whose queue is full for frames that wait for room (a backfill's): they
    are taken only once the test calls :meth:`make_room`; the fan-out's frames are
    taken at once."""

    def __init__(self) -> None:
        super().__init__()
        self._room = asyncio.Event()

    async def put(self, frame: bytes) -> None:
        await self._room.wait()
        await super().put(frame)

    def make_room(self) -> None:
        self._room.set()
