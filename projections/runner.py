"""Running one projection: catch up from the event store, then follow its queue.

The broker is a fast path and the store is the truth:

* On start the runner reads the log from its checkpoint to the head (``read_all``).
* It then consumes the projection's queue, which is bound to every event (``#``), so
  each delivery's ``previous_position`` must equal the position applied last. A
  delivery at or below the checkpoint is a duplicate: acknowledged, skipped. One whose
  ``previous_position`` is not the checkpoint reveals a gap (a purged queue, a message
  lost or reordered): the runner catches up from the store before going on.
* Deliveries are applied in batches, each in one transaction with the checkpoint
  (:class:`~projections.apply.Applier`), and acknowledged only after that commit: a
  crash before the ack redelivers them, and the checkpoint drops them then.
* An apply that keeps failing is retried with back-off; a batch that still fails is
  applied event by event so the good events before the bad one commit; the bad one,
  after ``max_attempts``, is parked and the projection halts (:class:`PoisonEvent`).
  It is never skipped. A database that cannot be reached is retried without limit.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from eventstore import EventStore, RecordedEvent, StoreUnavailable, tracing
from eventstore.bus import BusError, Delivery, EventBus, QueueSpec, Subscription, encode
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


class _Stopped(Exception):
    """The stop event was set while waiting to retry."""


class _Failed(Exception):
    """A commit failed on every attempt; carries the last error."""

    def __init__(self, cause: BaseException) -> None:
        super().__init__(str(cause))
        self.cause = cause


class ProjectionRunner:
    """Builds one projection's read model, from the store and from its queue."""

    def __init__(
        self,
        applier: Applier,
        store: EventStore,
        bus: EventBus,
        queue: QueueSpec,
        parking: ParkingLot,
        metrics: ProjectorMetrics,
        config: RunnerConfig | None = None,
        observer: CommitObserver | None = None,
    ) -> None:
        self.applier = applier
        self.name = applier.projection.name
        self.store = store
        self.bus = bus
        self.queue = queue
        self.parking = parking
        self.metrics = metrics
        self.config = config or RunnerConfig()
        self.observer = observer
        self.status = RunnerStatus()
        self._stop = asyncio.Event()
        self._acks: set[asyncio.Task[None]] = set()

    @property
    def checkpoint(self) -> int:
        return self.status.checkpoint

    def _set_checkpoint(self, position: int) -> None:
        self.status.checkpoint = position
        self.metrics.checkpoint.labels(self.name).set(position)

    async def run(self, stop: asyncio.Event) -> None:
        """Run until ``stop`` is set; a poison event halts this projection only (the
        method then waits for ``stop``, reporting the halt)."""
        self._stop = stop
        self.metrics.halted.labels(self.name).set(0)
        try:
            await self._retrying(self._start)
            await self._retrying(self._follow)
        except PoisonEvent as exc:
            self._halt(exc)
            await stop.wait()
        except _Stopped:
            pass
        if self.status.state != "halted":
            self.status.state = "stopped"

    async def _retrying(self, step: Callable[[], object]) -> None:
        """Run ``step`` until it returns; an unreachable store, database or broker is
        retried with back-off for as long as it takes (the runner reports it)."""
        backoff = Backoff(self.config.retry_delay, self.config.retry_max_delay)
        while not self._stop.is_set():
            try:
                await step()  # type: ignore[misc]
                return
            except (StoreUnavailable, ReadModelUnavailable, BusError) as exc:
                self.status.state, self.status.reason = "retrying", str(exc)
                self.metrics.retries.labels(self.name, "unavailable").inc()
                log.warning("projection %s: %s; retrying", self.name, exc)
                if not await backoff.wait(self._stop):
                    raise _Stopped from exc
        raise _Stopped

    async def _start(self) -> None:
        await self.applier.ensure_checkpoint()
        self._set_checkpoint(await self.applier.commit([]))
        await self.catch_up("start")

    async def catch_up(self, reason: str) -> None:
        """Apply the log from the checkpoint to its head (the last position read becomes
        the checkpoint, as positions are not dense)."""
        self.status.state = "catching_up"
        self.metrics.catch_ups.labels(self.name, reason).inc()
        while not self._stop.is_set():
            batch = await self.store.read_all(self.checkpoint, self.config.batch_size)
            if not batch:
                return
            await self._apply(batch, {})
            if len(batch) < self.config.batch_size:
                return

    async def _follow(self) -> None:
        inbox: asyncio.Queue[Delivery | BaseException] = asyncio.Queue()
        async with self.bus.consume_queue(self.queue, prefetch=self.config.prefetch) as sub:
            pump = asyncio.create_task(_pump(sub, inbox), name=f"{self.name} deliveries")
            try:
                # A gap may have opened while the subscription was not there.
                await self.catch_up("resubscribe")
                self.status.state, self.status.reason = "live", None
                while batch := await self._next_batch(inbox):
                    await self.handle(batch)
            finally:
                pump.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await pump
                # Settle what is settled before the subscription closes; anything not
                # acknowledged by then is delivered again and dropped as a duplicate.
                await asyncio.gather(*self._acks, return_exceptions=True)

    async def _next_batch(self, inbox: asyncio.Queue[Delivery | BaseException]) -> list[Delivery]:
        """The deliveries ready now (waiting for the first); empty once stopped."""
        getter = asyncio.ensure_future(inbox.get())
        stopper = asyncio.ensure_future(self._stop.wait())
        await asyncio.wait({getter, stopper}, return_when=asyncio.FIRST_COMPLETED)
        stopper.cancel()
        if not getter.done():
            getter.cancel()
            return []
        items = [getter.result()]
        while len(items) < self.config.batch_size and not inbox.empty():
            items.append(inbox.get_nowait())
        deliveries: list[Delivery] = []
        for item in items:
            if isinstance(item, BaseException):
                raise item
            deliveries.append(item)
        return deliveries

    async def handle(self, deliveries: Sequence[Delivery]) -> None:
        """Apply a batch of deliveries in order; acknowledge each once it is durable."""
        pending: list[Delivery] = []
        done: list[Delivery] = []
        for delivery in deliveries:
            expected = pending[-1].position if pending else self.checkpoint
            if delivery.position <= expected:
                self.metrics.duplicates.labels(self.name).inc()
                done.append(delivery)
            elif delivery.previous_position != expected:
                await self._commit_deliveries(pending)
                pending = []
                await self.catch_up("gap")
                self.status.state = "live"
                (done if delivery.position <= self.checkpoint else pending).append(delivery)
            else:
                pending.append(delivery)
        await self._commit_deliveries(pending)
        # Ack point: everything in ``done`` is at or below a committed checkpoint.
        self._ack_later(done)

    async def _commit_deliveries(self, deliveries: Sequence[Delivery]) -> None:
        if not deliveries:
            return
        records = [d.event for d in deliveries]
        await self._apply(records, {d.position: d for d in deliveries})
        now = time.time()
        for record in records:
            self.metrics.lag.labels(self.name).observe(now - record.recorded_at.timestamp())
        if self.observer is not None:
            self.observer(self.name, records)
        # Ack point: the commit above made these deliveries' effect durable.
        self._ack_later(deliveries)

    def _ack_later(self, deliveries: Sequence[Delivery]) -> None:
        """Acknowledge in the background while the next batch is applied, so the time
        the ack takes to leave is not added to the next batch's lag. The task is kept
        and awaited before the subscription closes."""
        if not deliveries:
            return
        task = asyncio.create_task(_ack_all(deliveries), name=f"{self.name} acks")
        self._acks.add(task)
        task.add_done_callback(self._acked)

    def _acked(self, task: asyncio.Task[None]) -> None:
        self._acks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            # The broker redelivers what was not acknowledged; the checkpoint drops it.
            log.warning("projection %s: acks failed: %r", self.name, task.exception())

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
        """Park the message of ``record`` and raise PoisonEvent; never returns."""
        error = PoisonEvent(self.name, record.position, record.type, repr(exc))
        previous = delivery.previous_position if delivery else self.checkpoint
        envelope = encode(record, previous)
        # Parking is retried like any unreachable dependency: halting without keeping
        # the message would leave nothing for the operator to inspect.
        await self._retrying(lambda: self.parking.park(self.name, envelope, str(error)))
        self.metrics.parked.labels(self.name).inc()
        if delivery is not None:
            # Ack point: the message now lives in the parked queue. The event stays in
            # the log and the checkpoint below it, so a restart meets it again.
            await delivery.ack()
        raise error from exc

    def _halt(self, exc: PoisonEvent) -> None:
        self.status.state, self.status.reason = "halted", str(exc)
        self.metrics.halted.labels(self.name).set(1)
        labels = (self.name, exc.event_type, str(exc.position), exc.cause.split("(", 1)[0])
        self.metrics.halt_info.labels(*labels).set(1)
        log.error("%s", exc)


async def _ack_all(deliveries: Sequence[Delivery]) -> None:
    """Acknowledge ``deliveries`` and every delivery before them: one frame for the lot.

    The runner handles deliveries in the order they came and calls this only once each
    of them, and so each one before them, is durable or a duplicate.
    """
    await deliveries[-1].ack_through()


async def _pump(source: Subscription, inbox: asyncio.Queue[Delivery | BaseException]) -> None:
    """Move deliveries from a subscription to ``inbox``; an error ends up there too."""
    try:
        async for delivery in source:
            inbox.put_nowait(delivery)
        inbox.put_nowait(BusError("the subscription ended"))
    except Exception as exc:  # handed to the consumer, which retries or stops
        inbox.put_nowait(exc)
