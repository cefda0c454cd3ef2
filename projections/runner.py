"""Running one projection: catch up from the event store, then follow the projector's
deliveries.

The broker is a fast path and the store is the truth:

* Before following, the runner reads the log from its checkpoint to the head
  (``read_all``).
* It then takes the deliveries of the projector's queue, which is bound to every event
  (``#``), from its :class:`Feed`: each delivery's ``previous_position`` must equal the
  position applied last. A delivery at or below the checkpoint is a duplicate, skipped.
  One whose ``previous_position`` is not the checkpoint reveals a gap (a purged queue,
  a message lost or reordered): the runner catches up from the store before going on.
* Deliveries are applied in batches, each in one transaction with the checkpoint
  (:class:`~projections.apply.Applier`); the runner tells its feed a batch is done only
  after that commit, and the projector acknowledges a delivery only once every
  projection still running is done with it: a crash before the ack redelivers it, and
  the checkpoint drops it then.
* An apply that keeps failing is retried with back-off; a batch that still fails is
  applied event by event so the good events before the bad one commit; the bad one,
  after ``max_attempts``, is parked and the projection halts (:class:`PoisonEvent`).
  It is never skipped. A database that cannot be reached is retried without limit,
  the deliveries waiting meanwhile (the broker's prefetch bounds them).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from eventstore import EventStore, RecordedEvent, StoreUnavailable, tracing
from eventstore.bus import BusError, Delivery, encode
from eventstore.bus.backoff import Backoff
from projections.apply import Applier
from projections.errors import PoisonEvent, ReadModelUnavailable
from projections.metrics import ProjectorMetrics
from projections.parking import ParkingLot

log = logging.getLogger(__name__)

CommitObserver = Callable[[str, Sequence[RecordedEvent]], None]
"""Called with the projection's name and the events of each live commit, right after it
(the benchmark measures lag with it)."""


@dataclass(frozen=True, slots=True)
class RunnerConfig:
    batch_size: int = 500
    prefetch: int = 1000
    max_attempts: int = 5
    retry_delay: float = 0.2
    retry_max_delay: float = 5.0


@dataclass
class RunnerStatus:
    """What /readyz reports: ``state`` is starting, catching_up, live, retrying, halted
    or stopped; ``reason`` says why it is retrying or halted."""

    state: str = "starting"
    checkpoint: int = 0
    reason: str | None = None


class Feed(Protocol):
    """The deliveries of one runner, in the order the broker delivered them."""

    async def batch(self, limit: int, stop: asyncio.Event) -> list[Delivery]:
        """The deliveries ready now, at most ``limit``, waiting for the first; empty
        once ``stop`` is set or the subscription behind the feed ended."""

    def done(self) -> None:
        """Every delivery handed out so far is durable or a duplicate."""

    def retire(self) -> None:
        """This runner takes no more deliveries (its projection halted)."""


class _Stopped(Exception):
    """The stop event was set while waiting to retry."""


class _Failed(Exception):
    """A commit failed on every attempt; carries the last error."""

    def __init__(self, cause: BaseException) -> None:
        super().__init__(str(cause))
        self.cause = cause


class ProjectionRunner:
    """Builds one projection's read model, from the store and from its feed."""

    def __init__(
        self,
        applier: Applier,
        store: EventStore,
        parking: ParkingLot,
        metrics: ProjectorMetrics,
        config: RunnerConfig | None = None,
        observer: CommitObserver | None = None,
    ) -> None:
        self.applier = applier
        self.name = applier.projection.name
        self.store = store
        self.parking = parking
        self.metrics = metrics
        self.config = config or RunnerConfig()
        self.observer = observer
        self.status = RunnerStatus()
        self._stop = asyncio.Event()
        self._prepared = False

    @property
    def checkpoint(self) -> int:
        return self.status.checkpoint

    @property
    def halted(self) -> bool:
        return self.status.state == "halted"

    def _set_checkpoint(self, position: int) -> None:
        self.status.checkpoint = position
        self.metrics.checkpoint.labels(self.name).set(position)

    async def follow(self, feed: Feed, stop: asyncio.Event) -> None:
        """Catch up from the store, then apply ``feed`` until it ends or ``stop`` is
        set. A poison event halts this projection: the feed is retired, and the runner
        reports the halt until the process stops."""
        self._stop = stop
        try:
            if not self._prepared:
                self.metrics.halted.labels(self.name).set(0)
                await self._retrying(self._prepare)
                await self._retrying(lambda: self.catch_up("start"))
            else:
                # A gap may have opened while there was no subscription.
                await self._retrying(lambda: self.catch_up("resubscribe"))
            self.status.state, self.status.reason = "live", None
            while batch := await feed.batch(self.config.batch_size, stop):
                await self._retrying(lambda: self.handle(batch))
                feed.done()
                if self.status.state != "live":  # recovered from a retry
                    self.status.state, self.status.reason = "live", None
        except PoisonEvent as exc:
            feed.retire()
            self._halt(exc)
        except _Stopped:
            pass

    def stopped(self) -> None:
        if not self.halted:
            self.status.state = "stopped"

    def unavailable(self, reason: str) -> None:
        """The projector's subscription is down (it retries): say so."""
        if not self.halted:
            self.status.state, self.status.reason = "retrying", reason
            self.metrics.retries.labels(self.name, "unavailable").inc()

    async def _retrying(self, step: Callable[[], object]) -> None:
        """Run ``step`` until it returns; an unreachable store, database or broker is
        retried with back-off for as long as it takes (the runner reports it)."""
        backoff = Backoff(self.config.retry_delay, self.config.retry_max_delay)
        while not self._stop.is_set():
            try:
                await step()  # type: ignore[misc]
                return
            except (StoreUnavailable, ReadModelUnavailable, BusError) as exc:
                self.unavailable(str(exc))
                log.warning("projection %s: %s; retrying", self.name, exc)
                if not await backoff.wait(self._stop):
                    raise _Stopped from exc
        raise _Stopped

    async def _prepare(self) -> None:
        await self.applier.ensure_checkpoint()
        self._set_checkpoint(await self.applier.commit([]))
        self._prepared = True

    async def catch_up(self, reason: str) -> None:
        """Apply the log from the checkpoint to its head (the last position read becomes
        the checkpoint, as positions are not dense)."""
        self.status.state = "catching_up"
        self.metrics.catch_ups.labels(self.name, reason).inc()
        while not self._stop.is_set():
            batch = await self.store.read_all(self.checkpoint, self.config.batch_size)
            if not batch:
                break
            await self._apply(batch, {})
            if len(batch) < self.config.batch_size:
                break
        if self.status.state == "catching_up":
            self.status.state, self.status.reason = "live", None

    async def handle(self, deliveries: Sequence[Delivery]) -> None:
        """Apply a batch of deliveries in order: when this returns, each of them is
        durable (committed with the checkpoint) or a duplicate. Safe to call again
        with the same deliveries."""
        pending: list[Delivery] = []
        for delivery in deliveries:
            expected = pending[-1].position if pending else self.checkpoint
            if delivery.position <= expected:
                self.metrics.duplicates.labels(self.name).inc()
                continue
            if delivery.previous_position != expected:
                await self._commit_deliveries(pending)
                pending = []
                await self._fill_gap_before(delivery)
                if delivery.position <= self.checkpoint:
                    self.metrics.duplicates.labels(self.name).inc()
                    continue
            pending.append(delivery)
        await self._commit_deliveries(pending)

    async def _fill_gap_before(self, delivery: Delivery) -> None:
        """Catch up from the store until ``delivery`` follows the checkpoint (or is
        applied already). Raises _Stopped when told to stop first: the deliveries of
        the batch are then not done (not acknowledged), and come again."""
        await self.catch_up("gap")
        if self._stop.is_set():
            raise _Stopped
        if delivery.position > self.checkpoint and delivery.previous_position != self.checkpoint:
            # The relay read the event before it published it, so a read now sees it:
            # if not, the store is not answering as it should. Never apply past a gap.
            raise StoreUnavailable(
                f"the log read up to {self.checkpoint} does not reach {delivery.position}'s"
                f" previous event {delivery.previous_position}"
            )

    async def _commit_deliveries(self, deliveries: Sequence[Delivery]) -> None:
        if not deliveries:
            return
        records = [d.event for d in deliveries]
        await self._apply(records, {d.position: d for d in deliveries})
        now = time.time()
        lag = self.metrics.lag.labels(self.name)
        for record in records:
            lag.observe(now - record.recorded_at.timestamp())
        if self.observer is not None:
            self.observer(self.name, records)

    async def _apply(self, records: Sequence[RecordedEvent], source: dict[int, Delivery]) -> None:
        started = time.time_ns()
        try:
            position = await self._commit_retrying(records)
        except _Failed as failed:
            if len(records) == 1:
                await self._poison(records[0], failed.cause, source.get(records[0].position))
            # Find the event that fails: commit one by one, so the good ones before it
            # are kept and the bad one alone is parked.
            for record in records:
                if record.position > self.checkpoint:
                    await self._apply([record], source)
            return
        self._set_checkpoint(position)
        self.metrics.applied.labels(self.name).inc(len(records))
        tracing.record_event_spans(
            "projection.apply", records, started, {"chronicle.projection": self.name}
        )

    async def _commit_retrying(self, records: Sequence[RecordedEvent]) -> int:
        backoff = Backoff(self.config.retry_delay, self.config.retry_max_delay)
        attempts = 0
        while True:
            try:
                return await self.applier.commit(records)
            except ReadModelUnavailable:
                raise
            except Exception as exc:  # an apply failure: retried, then the event is poison
                attempts += 1
                self.metrics.retries.labels(self.name, "apply").inc()
                log.warning("projection %s: apply failed (%d): %r", self.name, attempts, exc)
                if attempts >= self.config.max_attempts:
                    raise _Failed(exc) from exc
                if not await backoff.wait(self._stop):
                    raise _Stopped from exc

    async def _poison(
        self, record: RecordedEvent, exc: BaseException, delivery: Delivery | None
    ) -> None:
        """Park the message of ``record`` and raise PoisonEvent; never returns. The
        event stays in the log and the checkpoint below it, so a restart meets it
        again; the delivery itself is acknowledged by the projector once the other
        projections are done with it."""
        error = PoisonEvent(self.name, record.position, record.type, repr(exc))
        previous = delivery.previous_position if delivery else self.checkpoint
        envelope = encode(record, previous)
        # Parking is retried like any unreachable dependency: halting without keeping
        # the message would leave nothing for the operator to inspect.
        await self._retrying(lambda: self.parking.park(self.name, envelope, str(error)))
        self.metrics.parked.labels(self.name).inc()
        raise error from exc

    def _halt(self, exc: PoisonEvent) -> None:
        self.status.state, self.status.reason = "halted", str(exc)
        self.metrics.halted.labels(self.name).set(1)
        labels = (self.name, exc.event_type, str(exc.position), exc.cause.split("(", 1)[0])
        self.metrics.halt_info.labels(*labels).set(1)
        log.error("%s", exc)
