"""The live feed of one replica: the broker's broadcast, made gap-free, fanned out.

The hub keeps ``position``: every event at or below it has been fanned out (or was
committed before this replica started). A delivery at or below it is a duplicate and
is dropped. A delivery whose ``previous_position`` is not ``position`` means events
were missed (the broker's retention, a reconnect, the window before the consumer
attached): they are read from the event store first, so fanned-out positions form the
log itself, with nothing skipped and nothing twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from eventstore import tracing
from eventstore.bus.api import Delivery, EventBus
from eventstore.bus.backoff import Backoff
from eventstore.errors import StoreUnavailable
from eventstore.model import RecordedEvent
from eventstore.store import EventStore
from ws_bridge.fanout import Fanout
from ws_bridge.metrics import BridgeMetrics
from ws_bridge.protocol import encode_event

log = logging.getLogger(__name__)

T = TypeVar("T")

# The broadcast is read from a little before start-up: events published between the
# store's head read and the consumer attaching then come from the bus, not a repair.
_REWIND = timedelta(seconds=10)


class Hub:
    """Reads the broadcast and offers each event, encoded once, to the fan-out."""

    def __init__(
        self,
        store: EventStore,
        bus: EventBus,
        fanout: Fanout,
        metrics: BridgeMetrics,
        *,
        page_size: int = 500,
        prefetch: int = 1000,
    ) -> None:
        self._store = store
        self._bus = bus
        self._fanout = fanout
        self._metrics = metrics
        self._page = page_size
        self._prefetch = prefetch
        self._backoff = Backoff()
        self.position = 0
        self.started = asyncio.Event()

    async def run(self, stop: asyncio.Event) -> None:
        """Follow the broadcast until ``stop`` is set."""
        consumer = asyncio.create_task(self._consume(stop), name="bridge hub")
        stopper = asyncio.create_task(stop.wait())
        try:
            await asyncio.wait({consumer, stopper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopper.cancel()
            consumer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await consumer

    async def _consume(self, stop: asyncio.Event) -> None:
        self.position = await self._retrying(self._store.head_position, stop)
        self._metrics.position.set(self.position)
        self.started.set()
        start = datetime.now(UTC) - _REWIND
        log.info("bridge hub: live from position %d", self.position)
        # Acknowledging a broadcast only returns flow-control credit, so one ack for
        # every quarter of the prefetch (a multiple ack: one frame) keeps deliveries
        # flowing without a frame per event; fewer unacked than that never stall it.
        ack_every = max(1, self._prefetch // 4)
        unacked = 0
        async with self._bus.consume_broadcast(start=start, prefetch=self._prefetch) as feed:
            async for delivery in feed:
                await self._apply(delivery, stop)
                unacked += 1
                if unacked >= ack_every:
                    await delivery.ack_through()
                    unacked = 0

    async def _apply(self, delivery: Delivery, stop: asyncio.Event) -> None:
        event = delivery.event
        if event.position <= self.position:
            self._metrics.duplicates.inc()
            return
        if delivery.previous_position != self.position:
            self._metrics.gap_repairs.inc()
            await self._retrying(lambda: self._repair(event.position), stop)
        if event.position > self.position:
            self.dispatch(event)

    async def _repair(self, until: int) -> None:
        """Fan out the store's events between ``position`` and ``until`` (exclusive)."""
        while True:
            page = await self._store.read_all(self.position, self._page)
            for event in page:
                if event.position >= until:
                    return
                self.dispatch(event)
            if len(page) < self._page:
                return

    def dispatch(self, event: RecordedEvent) -> None:
        """Encode ``event`` once and offer it to every matching subscription."""
        started = time.time_ns()
        encoded = encode_event(event)
        self.position = event.position
        sent = self._fanout.publish(encoded)
        self._metrics.position.set(event.position)
        self._metrics.events.inc()
        self._metrics.lag.observe(max(0.0, started / 1e9 - event.recorded_at.timestamp()))
        if sent:
            self._metrics.deliveries.inc(sent)
        attributes = {"chronicle.ws.deliveries": sent}
        tracing.record_event_spans("bridge.deliver", (event,), started, attributes)

    async def _retrying(self, call: Callable[[], Awaitable[T]], stop: asyncio.Event) -> T:
        # The store is the source of truth and the feed cannot move past a gap, so a
        # store outage is waited out (with back-off) rather than skipped.
        while True:
            try:
                result = await call()
            except StoreUnavailable as exc:
                log.warning("bridge hub: event store unavailable: %s", exc)
                if not await self._backoff.wait(stop):
                    raise
                continue
            self._backoff.reset()
            return result
