"""One run of the relay's publishing pipeline, from a confirmed position until it fails
or is told to stop.

Three tasks share the work:

* feed: reads batches in commit order, encodes them with the previous-position chain,
  and starts publishing each one at once, keeping up to ``max_in_flight`` batches
  awaiting their confirms (pipelining; the publisher keeps call order);
* confirm: waits for each batch's confirms, oldest first, and only then advances the
  confirmed position, so a batch confirmed early never lets the position skip an
  earlier one that might still fail;
* checkpoint: writes the confirmed position to the store, at most every
  ``checkpoint_interval``, so a restart resumes there. It never runs ahead of a
  confirm: at worst a restart publishes some events again, it never skips one.

Any error ends the run (the relay starts a new one after a back-off, from the last
confirmed position); publishes still in flight are cancelled.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from opentelemetry.trace import SpanKind

from eventstore import tracing
from eventstore.bus.api import Publisher
from eventstore.bus.wire import encode
from eventstore.errors import InvalidVersion
from eventstore.model import RecordedEvent
from eventstore.relay.config import RelayConfig
from eventstore.relay.metrics import RelayMetrics
from eventstore.store import EventStore

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class _Batch:
    last: RecordedEvent
    count: int
    task: asyncio.Task[None]


class Pump:
    """Publishes the log after ``start``; see the module docstring."""

    def __init__(
        self,
        store: EventStore,
        publisher: Publisher,
        config: RelayConfig,
        metrics: RelayMetrics,
        start: int,
        on_confirm: Callable[[int], None] = lambda position: None,
    ) -> None:
        self._store = store
        self._publisher = publisher
        self._config = config
        self._metrics = metrics
        self._on_confirm = on_confirm
        self.confirmed = start
        """The position of the last event confirmed by the broker."""
        self._saved = start
        self._in_flight: deque[_Batch] = deque()
        self._slots = asyncio.Semaphore(config.max_in_flight)
        self._fed = asyncio.Event()
        self._feeding = True
        self._to_save = asyncio.Event()
        self._confirming = True

    async def run(self, stop: asyncio.Event) -> None:
        """Publish until ``stop`` is set (then drain and save the checkpoint) or an error
        (BusError, EventStoreError) is raised."""
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self._feed(stop))
                group.create_task(self._confirm())
                group.create_task(self._checkpoint())
        except BaseExceptionGroup as failed:
            raise _first(failed) from None
        finally:
            await self._cancel_in_flight()

    async def _feed(self, stop: asyncio.Event) -> None:
        position = previous = self.confirmed
        delay = self._config.poll_min_delay
        try:
            while not stop.is_set():
                events = await self._store.read_all(position, self._config.batch_size)
                if not events:
                    # Appends in this process wake us early; others are seen on the poll.
                    await self._store.wait_for_append(delay)
                    delay = min(delay * 2, self._config.poll_max_delay)
                    continue
                delay = self._config.poll_min_delay
                self._metrics.read(events)
                envelopes = []
                for event in events:
                    envelopes.append(encode(event, previous))
                    previous = event.position
                await self._slots.acquire()
                publish = partial(self._publisher.publish, envelopes)
                traced = tracing.traced_batch(publish, "relay.publish", events, SpanKind.PRODUCER)
                task = asyncio.create_task(traced)
                self._in_flight.append(_Batch(events[-1], len(events), task))
                self._fed.set()
                position = events[-1].position
        finally:
            self._feeding = False
            self._fed.set()

    async def _confirm(self) -> None:
        try:
            while self._in_flight or self._feeding:
                if not self._in_flight:
                    self._fed.clear()
                    await self._fed.wait()
                    continue
                batch = self._in_flight[0]
                await batch.task
                self._in_flight.popleft()
                self._slots.release()
                self.confirmed = batch.last.position
                self._metrics.confirmed(batch.count, batch.last.position, batch.last.recorded_at)
                self._on_confirm(self.confirmed)
                self._to_save.set()
        finally:
            self._confirming = False
            self._to_save.set()

    async def _checkpoint(self) -> None:
        while self._confirming or self._saved < self.confirmed:
            await self._to_save.wait()
            self._to_save.clear()
            if self._saved < self.confirmed:
                await self._save(self.confirmed)
                if self._confirming:
                    # Coalesce: confirms arriving meanwhile are saved together next.
                    await asyncio.sleep(self._config.checkpoint_interval)

    async def _save(self, position: int) -> None:
        try:
            await self._store.save_checkpoint(self._config.name, position)
        except InvalidVersion:
            # Another relay of the group moved it further while we thought we led
            # (a lock connection lost unnoticed). Checkpoints never go back; ours is
            # behind theirs, so there is nothing to record.
            log.warning("relay checkpoint %r is already beyond %d", self._config.name, position)
        self._saved = position

    async def _cancel_in_flight(self) -> None:
        tasks = [batch.task for batch in self._in_flight]
        self._in_flight.clear()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def _first(group: BaseExceptionGroup) -> BaseException:
    """The error that ended the run (the others are its consequences, or cancellations)."""
    for error in group.exceptions:
        if isinstance(error, BaseExceptionGroup):
            return _first(error)
        if not isinstance(error, asyncio.CancelledError):
            return error
    return group.exceptions[0]
