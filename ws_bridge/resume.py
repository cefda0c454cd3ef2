"""Resuming a subscription from ``after_position``: backfill from the log, then live.

The subscription is registered with the fan-out first, in backfill mode: live events
that match wait in its ``pending`` buffer. The log is read (read-only, in commit
order) from ``after_position`` until a short page; that last read started after the
hub's position was noted, so it covered every event up to that position. Then the
pending events above the subscription's cursor are sent and the subscription turns
live in the same step (no await in between), so nothing falls between the two
sources and nothing comes twice: every send requires a position above the cursor.
``caught_up`` is queued in that same step too, so it reaches the client before any
live event.
"""

from __future__ import annotations

from collections import deque
from typing import Protocol

from ws_bridge.context import BridgeContext
from ws_bridge.fanout import Subscription
from ws_bridge.protocol import caught_up, encode_event


class Outbox(Protocol):
    """Where a backfill's frames go: the client's outbound queue."""

    async def put(self, frame: bytes) -> None:
        """Queue ``frame``, waiting for room (a backfill may wait; the fan-out never)."""

    def put_nowait(self, frame: bytes) -> None:
        """Send or queue ``frame`` at once, even one past the queue's bound."""


async def backfill(context: BridgeContext, sub: Subscription, after: int, outbox: Outbox) -> None:
    """Send ``sub`` every matching event after ``after``, then ``caught_up``; live after.

    ``sub`` must be registered with the fan-out and in backfill mode (``pending`` set,
    ``cursor == after``). Raises StoreUnavailable when the log cannot be read.
    """
    async with context.backfills:
        context.metrics.backfills.inc()
        await _read_log(context, sub, after, outbox)
    assert sub.pending is not None
    while sub.pending:
        encoded = sub.pending.popleft()
        if encoded.position > sub.cursor:
            sub.cursor = encoded.position
            await outbox.put(encoded.frame(sub.prefix))
    # Live from here: no await between the empty buffer and this switch, nor between
    # the switch and queueing caught_up. Waiting for room for it would let a live
    # event reach the client first, and the client, resuming from caught_up's
    # position later, would get that event twice. One frame past the bound is fine.
    sub.pending = None
    sub.cursor = max(sub.cursor, context.hub.position)
    outbox.put_nowait(caught_up(sub.id, sub.cursor))


async def _read_log(context: BridgeContext, sub: Subscription, after: int, outbox: Outbox) -> None:
    page_size = context.settings.bridge_backfill_page
    categories = sub.filter.read_categories()
    types = sub.filter.types or None
    read_from = after
    while True:
        covered = context.hub.position
        page = await context.store.read_all(
            read_from, page_size, categories=categories, types=types
        )
        for event in page:
            if event.position > sub.cursor and sub.filter.matches(event):
                sub.cursor = event.position
                await outbox.put(encode_event(event).frame(sub.prefix))
                context.metrics.backfilled.inc()
        if len(page) < page_size:
            # The read reached the log's head, which is at or past ``covered``.
            sub.cursor = max(sub.cursor, covered)
            return
        read_from = page[-1].position


def start_backfill(sub: Subscription, after: int, limit: int) -> None:
    """Put ``sub`` in backfill mode from ``after`` (before registering it)."""
    sub.cursor = after
    sub.pending = deque()
    sub.pending_limit = limit
