"""The projector: every projection's runner in one process, fed by one queue, and its
health endpoints.

The projector consumes one queue, bound to every event, and hands each delivery to
every runner (:class:`Fanout`): the broker stores and delivers an event once per
projector, however many projections it runs. Each runner still applies in its own
transactions under its own checkpoint, at its own pace; a delivery is acknowledged once
every projection still running has made it durable (or dropped it as a duplicate).

Each runner keeps going on its own: a poison event halts its projection only, and
/readyz then answers 503 naming the projection, the event and the error, while the
other projections go on building (see docs/projections.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Iterable, Sequence

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from eventstore import EventStore
from eventstore.bus import BusError, Delivery, EventBus, QueueSpec, Subscription
from eventstore.bus.backoff import Backoff
from projections.apply import Applier
from projections.bank import bank_projections
from projections.collector import older_objects_frozen
from projections.errors import UnknownProjection
from projections.metrics import ProjectorMetrics
from projections.parking import ParkingLot
from projections.projection import Projection
from projections.runner import CommitObserver, ProjectionRunner, RunnerConfig

log = logging.getLogger(__name__)

ALL_EVENTS = ("#",)
"""The projector's queue is bound to every event, so ``previous_position`` of each
delivery is the event before it in the log, and a gap is detected exactly."""

EVERY_PROJECTION = "all"
"""The queue of a projector running every projection of the build."""


def queue_spec(projections: Iterable[Projection] | None = None) -> QueueSpec:
    """The broker queue of a projector running ``projections`` (all by default):
    ``all``, or ``only-<name>-<name>…`` for a subset.

    Replicas running the same projections share it (one consumes, the others stand
    by); a projector running a subset has a queue of its own, named after the subset,
    so it never stands by behind one running other projections.
    """
    everything = sorted(p.name for p in bank_projections())
    chosen = everything if projections is None else sorted({p.name for p in projections})
    if chosen == everything:
        return QueueSpec(EVERY_PROJECTION, ALL_EVENTS)
    # "only-" keeps these apart from the queues of one projection each that an earlier
    # topology had (chronicle migrate removes those).
    return QueueSpec("only-" + "-".join(chosen), ALL_EVENTS)


def queue_specs(projections: Iterable[Projection] | None = None) -> list[QueueSpec]:
    """The queues to declare for a projector running ``projections`` (all by default)."""
    return [queue_spec(projections)]


def select_projections(names: Sequence[str] = ()) -> list[Projection]:
    """The projections named (all when empty); raises UnknownProjection."""
    available = {p.name: p for p in bank_projections()}
    for name in names:
        if name not in available:
            known = ", ".join(available)
            raise UnknownProjection(f"no projection named {name!r} (known: {known})")
    return [available[name] for name in names] if names else list(available.values())


class _Feed:
    """One runner's share of the deliveries (see :class:`~projections.runner.Feed`)."""

    def __init__(self, fanout: Fanout) -> None:
        self._fanout = fanout
        self._items: deque[tuple[int, Delivery]] = deque()
        self._arrived = asyncio.Event()
        self._handed = 0
        self._closed = False
        self.done_through = 0
        """The sequence number of the last delivery this runner is done with."""

    def put(self, seq: int, delivery: Delivery) -> None:
        self._items.append((seq, delivery))
        self._arrived.set()

    def close(self) -> None:
        self._closed = True
        self._arrived.set()

    async def batch(self, limit: int, stop: asyncio.Event) -> list[Delivery]:
        while not self._items and not self._closed and not stop.is_set():
            self._arrived.clear()
            stopping = asyncio.ensure_future(stop.wait())
            arrived = asyncio.ensure_future(self._arrived.wait())
            await asyncio.wait({stopping, arrived}, return_when=asyncio.FIRST_COMPLETED)
            stopping.cancel()
            arrived.cancel()
        if self._closed or stop.is_set():
            return []
        items = self._items
        batch: list[Delivery] = []
        seq = self._handed
        while items and len(batch) < limit:
            seq, delivery = items.popleft()
            batch.append(delivery)
        self._handed = seq
        return batch

    def done(self) -> None:
        self.done_through = self._handed
        self._fanout.advance()

    def retire(self) -> None:
        self._items.clear()
        self.close()
        self._fanout.retire(self)


class Fanout:
    """Hands every delivery of one subscription to each runner's feed, in order, and
    acknowledges a delivery once every feed not retired is done with it: one multiple
    ack covers it and every delivery before it."""

    def __init__(self, count: int) -> None:
        self.feeds = [_Feed(self) for _ in range(count)]
        self._running = list(self.feeds)
        self._unacked: deque[tuple[int, Delivery]] = deque()
        self._seq = 0
        self._newest: Delivery | None = None
        """The newest delivery every running feed is done with, not acknowledged yet."""
        self._acking: asyncio.Task[None] | None = None

    def put(self, delivery: Delivery) -> None:
        self._seq += 1
        self._unacked.append((self._seq, delivery))
        for feed in self._running:
            feed.put(self._seq, delivery)
        if not self._running:
            self._ack_through(self._seq)

    def close(self) -> None:
        for feed in self.feeds:
            feed.close()

    def advance(self) -> None:
        """Acknowledge what every running feed is done with."""
        running = self._running
        self._ack_through(min(f.done_through for f in running) if running else self._seq)

    def retire(self, feed: _Feed) -> None:
        """``feed`` takes no more deliveries; the others' progress alone counts now."""
        if feed in self._running:
            self._running.remove(feed)
        self.advance()

    def _ack_through(self, seq: int) -> None:
        last: Delivery | None = None
        while self._unacked and self._unacked[0][0] <= seq:
            last = self._unacked.popleft()[1]
        if last is None:
            return
        self._newest = last
        if self._acking is None:
            # In the background, so the time the ack takes to leave is not added to
            # the next batch's lag; awaited before the subscription closes.
            self._acking = asyncio.create_task(self._ack(), name="projector acks")

    async def _ack(self) -> None:
        """One acknowledgement at a time, each naming the newest delivery done with by
        then: progress made while one leaves (every delivery, once no projection runs)
        goes out as one frame, not one each."""
        try:
            while (delivery := self._newest) is not None:
                self._newest = None
                try:
                    await delivery.ack_through()
                except Exception as exc:
                    # The broker redelivers what was not acknowledged; the checkpoints
                    # drop it. The next acknowledgement covers this one's deliveries.
                    log.warning("projector: acks failed: %r", exc)
        finally:
            # No await between finding nothing newer and this: progress made from now
            # on starts a new task.
            self._acking = None

    async def settled(self) -> None:
        """Wait until what every running feed is done with has been acknowledged."""
        if self._acking is not None:
            await asyncio.gather(self._acking, return_exceptions=True)


class Projector:
    """The runners of a set of projections over one store, bus and read database."""

    def __init__(
        self,
        projections: Sequence[Projection],
        *,
        engine: AsyncEngine,
        store: EventStore,
        bus: EventBus,
        parking: ParkingLot,
        metrics: ProjectorMetrics | None = None,
        config: RunnerConfig | None = None,
        observer: CommitObserver | None = None,
    ) -> None:
        self.engine = engine
        self.store = store
        self.bus = bus
        self.metrics = metrics or ProjectorMetrics()
        self.config = config or RunnerConfig()
        self.queue = queue_spec(projections)
        self.runners = [
            ProjectionRunner(Applier(p, engine), store, parking, self.metrics, config, observer)
            for p in projections
        ]

    def runner(self, name: str) -> ProjectionRunner:
        for runner in self.runners:
            if runner.name == name:
                return runner
        raise UnknownProjection(name)

    async def run(self, stop: asyncio.Event) -> None:
        """Run every projection until ``stop`` is set. A runner that fails with an
        unexpected error (a bug, not a poison event) fails the whole projector, so the
        process restarts rather than serving half of its projections unnoticed.

        While it runs, the objects made before it are left out of cyclic garbage
        collection (see :mod:`projections.collector`)."""
        backoff = Backoff(self.config.retry_delay, self.config.retry_max_delay)
        try:
            with older_objects_frozen():
                while not stop.is_set():
                    try:
                        await self._subscribed(stop, backoff)
                    except BusError as exc:
                        log.warning("projector: %s; subscribing again", exc)
                        for runner in self.runners:
                            runner.unavailable(str(exc))
                        if not await backoff.wait(stop):
                            break
        finally:
            for runner in self.runners:
                runner.stopped()

    async def _subscribed(self, stop: asyncio.Event, backoff: Backoff) -> None:
        """One subscription's life: every runner not halted follows its feed until
        ``stop`` or a broker failure (raised once the runners have put down their
        batches: none is cancelled mid-commit)."""
        running = [runner for runner in self.runners if not runner.halted]
        fanout = Fanout(len(running))
        failure: list[BaseException] = []
        subscription = self.bus.consume_queue(self.queue, prefetch=self.config.prefetch)
        async with subscription:
            backoff.reset()
            pump = asyncio.create_task(_pump(subscription, fanout, failure), name="deliveries")
            try:
                async with asyncio.TaskGroup() as group:
                    for runner, feed in zip(running, fanout.feeds, strict=True):
                        name = f"projection {runner.name}"
                        group.create_task(runner.follow(feed, stop), name=name)
                    if not running:
                        # Every projection halted: keep the queue drained until told
                        # to stop (a restart catches up from the checkpoints anyway).
                        group.create_task(_until_either(stop, pump))
            finally:
                pump.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await pump
                # Settle what is settled before the subscription closes; anything not
                # acknowledged by then is delivered again and dropped as a duplicate.
                await fanout.settled()
        if failure and not stop.is_set():
            raise failure[0]

    async def ping_read_database(self) -> None:
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    def report(self) -> dict[str, dict[str, object]]:
        return {
            r.name: {
                "state": r.status.state,
                "checkpoint": r.status.checkpoint,
                "reason": r.status.reason,
            }
            for r in self.runners
        }


async def _pump(source: Subscription, fanout: Fanout, failure: list[BaseException]) -> None:
    """Move deliveries from the subscription to every feed; a broker failure closes the
    feeds (the runners finish their batch and return) and is kept in ``failure``."""
    try:
        async for delivery in source:
            fanout.put(delivery)
        failure.append(BusError("the subscription ended"))
    except BusError as exc:
        failure.append(exc)
    finally:
        fanout.close()


async def _until_either(stop: asyncio.Event, task: asyncio.Task[None]) -> None:
    stopping = asyncio.ensure_future(stop.wait())
    await asyncio.wait({stopping, task}, return_when=asyncio.FIRST_COMPLETED)
    stopping.cancel()
