"""The ack point: a delivery is acknowledged only once the read-model transaction
holding its effect has committed in every projection still running, and a duplicate
is acknowledged without effect."""

from __future__ import annotations

import asyncio

from commands.events import AccountOpened, MoneyDeposited, account_stream
from eventstore import RecordedEvent
from eventstore.bus import Delivery
from projections.apply import Applier
from projections.bank import AccountSummaryProjection, AccountTransactionsProjection
from projections.checkpoints import read_checkpoint
from projections.metrics import ProjectorMetrics
from projections.projection import Projection
from projections.projector import Fanout
from projections.runner import ProjectionRunner
from tests.unit.projections.conftest import FAST, World
from tests.unit.projections.support import snapshot


class _Deliveries:
    """Deliveries as a bus hands them out, recording each ack with the checkpoints
    durable at that moment."""

    def __init__(self, world: World, projections: list[Projection]) -> None:
        self.world = world
        self.projections = projections
        self.handed: list[Delivery] = []
        self.acked: list[tuple[int, list[int]]] = []

    async def _record_ack(self, delivery: Delivery) -> None:
        async with self.world.engine.connect() as conn:
            durable = [await read_checkpoint(conn, p.name) for p in self.projections]
        self.acked.append((delivery.position, durable))

    async def _ack_through(self, last: Delivery) -> None:
        # As a bus does it: every delivery handed out up to ``last``, not settled yet.
        for earlier in self.handed[: self.handed.index(last) + 1]:
            if not earlier.settled:
                earlier.mark_settled()
                await self._record_ack(earlier)

    def chain(self, records: list[RecordedEvent]) -> list[Delivery]:
        previous = [0, *(r.position for r in records[:-1])]
        return [self.one(r, p) for r, p in zip(records, previous, strict=True)]

    def one(self, record: RecordedEvent, previous: int) -> Delivery:
        async def settle(ack: bool, requeue: bool) -> None:
            raise AssertionError("the projector settles with multiple acks only")

        made = Delivery(record, previous, settle, ack_through=self._ack_through)
        self.handed.append(made)
        return made


def _runner(world: World, projection: Projection) -> ProjectionRunner:
    return ProjectionRunner(
        Applier(projection, world.engine), world.store, world.parking, ProjectorMetrics(), FAST
    )


async def _opened_account(world: World, account: str) -> list[RecordedEvent]:
    return await world.append(
        account_stream(account),
        AccountOpened(account_id=account, owner="Ada"),
        MoneyDeposited(account_id=account, amount=5),
        MoneyDeposited(account_id=account, amount=6),
    )


async def _both_models(world: World, account: str) -> tuple[_Deliveries, Fanout]:
    """Both account models' checkpoints, an opened account's events handed to a fan-out
    of two feeds (one per model)."""
    projections: list[Projection] = [AccountSummaryProjection(), AccountTransactionsProjection()]
    for projection in projections:
        await Applier(projection, world.engine).ensure_checkpoint()
    records = await _opened_account(world, account)
    deliveries = _Deliveries(world, projections)
    fanout = Fanout(2)
    for delivery in deliveries.chain(records):
        fanout.put(delivery)
    return deliveries, fanout


async def test_acks_come_after_the_commit_and_duplicates_are_acked_without_effect(
    world: World,
) -> None:
    projection = AccountSummaryProjection()
    runner = _runner(world, projection)
    await runner.applier.ensure_checkpoint()
    records = await _opened_account(world, "k1")
    deliveries = _Deliveries(world, [projection])
    fanout = Fanout(1)
    (feed,) = fanout.feeds
    stop = asyncio.Event()

    for delivery in deliveries.chain(records):
        fanout.put(delivery)
    batch = await feed.batch(100, stop)
    await runner.handle(batch)
    assert deliveries.acked == []  # not before the runner says it is done
    feed.done()
    await fanout.settled()
    # The same messages again, as after a broker redelivery.
    for delivery in deliveries.chain(records):
        fanout.put(delivery)
    await runner.handle(await feed.batch(100, stop))
    feed.done()
    await fanout.settled()

    assert len(deliveries.acked) == 6
    assert all(durable[0] >= position for position, durable in deliveries.acked)
    assert runner.metrics.duplicates.labels(projection.name)._value.get() == 3
    async with world.engine.connect() as conn:
        assert await read_checkpoint(conn, projection.name) == records[-1].position
    rows = await snapshot(world.engine)
    assert rows["accounts"]["k1"]["balance"] == 11


async def test_a_delivery_is_acked_once_every_running_projection_has_committed_it(
    world: World,
) -> None:
    deliveries, fanout = await _both_models(world, "k2")
    runners = [_runner(world, p) for p in deliveries.projections]
    records = [d.event for d in deliveries.handed]
    fast, slow = fanout.feeds
    stop = asyncio.Event()

    await runners[0].handle(await fast.batch(100, stop))
    fast.done()
    await fanout.settled()
    assert deliveries.acked == []  # the other projection has not committed them yet

    first = await slow.batch(2, stop)  # the slow one takes them in two batches
    await runners[1].handle(first)
    slow.done()
    await fanout.settled()
    assert [position for position, _ in deliveries.acked] == [r.position for r in records[:2]]

    await runners[1].handle(await slow.batch(2, stop))
    slow.done()
    await fanout.settled()
    assert [position for position, _ in deliveries.acked] == [r.position for r in records]
    # Every ack came once both checkpoints held the delivery.
    assert all(min(durable) >= position for position, durable in deliveries.acked)


async def test_a_retired_feed_no_longer_holds_acks_back(world: World) -> None:
    deliveries, fanout = await _both_models(world, "k3")
    runner = _runner(world, deliveries.projections[0])
    records = [d.event for d in deliveries.handed]
    live, halted = fanout.feeds
    stop = asyncio.Event()
    await runner.handle(await live.batch(100, stop))
    live.done()
    await fanout.settled()
    assert deliveries.acked == []

    halted.retire()  # its projection halted: the others' progress alone counts now
    await fanout.settled()
    assert [position for position, _ in deliveries.acked] == [r.position for r in records]
    # Deliveries arriving once every feed is retired are acknowledged at once.
    live.retire()
    more = await world.append(account_stream("k3"), MoneyDeposited(account_id="k3", amount=1))
    fanout.put(deliveries.one(more[0], records[-1].position))
    await fanout.settled()
    assert deliveries.acked[-1][0] == more[0].position
    assert await halted.batch(10, stop) == []  # nothing queued for a retired feed


async def test_a_closed_feed_ends_the_runner_loop_and_stop_ends_a_wait(world: World) -> None:
    fanout = Fanout(1)
    (feed,) = fanout.feeds
    stop = asyncio.Event()
    waiting = asyncio.create_task(feed.batch(10, stop))
    await asyncio.sleep(0)
    stop.set()
    assert await asyncio.wait_for(waiting, 1) == []
    fanout.close()
    assert await feed.batch(10, asyncio.Event()) == []


async def test_progress_made_while_an_ack_leaves_goes_out_as_one_ack(world: World) -> None:
    records = await _opened_account(world, "k4")
    more = await _opened_account(world, "k5")
    frames: list[int] = []

    async def ack_through(last: Delivery) -> None:
        frames.append(last.position)
        await asyncio.sleep(0)  # the frame takes a turn of the loop to leave

    async def settle(ack: bool, requeue: bool) -> None:
        raise AssertionError("the projector settles with multiple acks only")

    fanout = Fanout(1)
    (feed,) = fanout.feeds
    feed.retire()  # its projection halted: every delivery is acknowledged as it comes
    chain = [0, *(r.position for r in [*records, *more])]
    handed = [
        Delivery(record, before, settle, ack_through=ack_through)
        for record, before in zip([*records, *more], chain, strict=False)
    ]
    fanout.put(handed[0])
    await asyncio.sleep(0)  # its ack is on its way
    for delivery in handed[1:]:
        fanout.put(delivery)
    await fanout.settled()
    # One ack for the first; the five that came while it left go out as one.
    assert frames == [records[0].position, more[-1].position]
