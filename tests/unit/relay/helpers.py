"""Helpers shared by the relay's unit and integration tests."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from eventstore import EventStore, NewEvent, RecordedEvent


async def wait_until(
    condition: Callable[[], bool | Awaitable[bool]],
    timeout: float = 10.0,
    what: str = "condition",
    interval: float = 0.01,
) -> float:
    """Poll ``condition`` until it holds; return the seconds it took. Fails the test
    with ``what`` after ``timeout``."""
    start = time.monotonic()
    while True:
        result = condition()
        if not isinstance(result, bool):
            result = await result
        if result:
            return time.monotonic() - start
        if time.monotonic() - start > timeout:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(interval)


async def append_events(
    store: EventStore, count: int, *, streams: int = 3, per_append: int = 1, tag: str = ""
) -> list[RecordedEvent]:
    """Append ``count`` events spread over ``streams`` streams of two categories; return
    them as recorded."""
    run = tag or uuid.uuid4().hex[:8]
    recorded: list[RecordedEvent] = []
    for start in range(0, count, per_append):
        n = min(per_append, count - start)
        stream = f"{('account', 'transfer')[start % 2]}-{run}{start % streams}"
        events = [
            NewEvent(
                "MoneyDeposited" if stream.startswith("account") else "TransferStarted",
                {"amount": start + i, "note": "x" * 40},
                {"correlation_id": f"corr-{start + i}", "traceparent": f"00-{run}-01"},
            )
            for i in range(n)
        ]
        result = await store.append(stream, events)
        recorded.extend(result.events)
    return recorded


def recorded_event(
    position: int, *, stream: str = "account-1", type_: str = "Opened"
) -> RecordedEvent:
    """A RecordedEvent made up for tests that need no store."""
    return RecordedEvent(
        event_id=uuid.uuid4(),
        stream_id=stream,
        version=1,
        position=position,
        type=type_,
        data={"n": position},
        metadata={"correlation_id": "c-1", "causation_id": "c-0", "traceparent": "00-ab-cd-01"},
        recorded_at=datetime.now(UTC),
    )
