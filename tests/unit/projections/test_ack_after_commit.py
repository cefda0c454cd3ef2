"""The ack point: a delivery is acknowledged only once the read-model transaction
holding its effect has committed, and a duplicate is acknowledged without effect."""

from __future__ import annotations

import asyncio

from commands.events import AccountOpened, MoneyDeposited, account_stream
from eventstore import RecordedEvent
from eventstore.bus import Delivery
from projections.apply import Applier
from projections.bank import AccountSummaryProjection
from projections.checkpoints import read_checkpoint
from projections.metrics import ProjectorMetrics
from projections.projector import queue_specs
from projections.runner import ProjectionRunner
from tests.unit.projections.conftest import FAST, World
from tests.unit.projections.support import snapshot


async def test_acks_come_after_the_commit_and_duplicates_are_acked_without_effect(
    world: World,
) -> None:
    projection = AccountSummaryProjection()
    runner = ProjectionRunner(
        Applier(projection, world.engine),
        world.store,
        world.bus,
        queue_specs([projection])[0],
        world.parking,
        ProjectorMetrics(),
        FAST,
    )
    await runner.applier.ensure_checkpoint()
    records = await world.append(
        account_stream("k1"),
        AccountOpened(account_id="k1", owner="Ada"),
        MoneyDeposited(account_id="k1", amount=5),
        MoneyDeposited(account_id="k1", amount=6),
    )
    acked: list[tuple[int, int]] = []
    handed: list[Delivery] = []

    async def record_ack(delivery: Delivery) -> None:
        async with world.engine.connect() as conn:
            durable = await read_checkpoint(conn, projection.name)
        acked.append((delivery.position, durable))

    async def ack_through(last: Delivery) -> None:
        # As a bus does it: every delivery handed out up to ``last``, not settled yet.
        for earlier in handed[: handed.index(last) + 1]:
            if not earlier.settled:
                earlier.mark_settled()
                await record_ack(earlier)

    def delivery(record: RecordedEvent, previous: int) -> Delivery:
        async def settle(ack: bool, requeue: bool) -> None:
            assert ack
            await record_ack(made)

        made = Delivery(record, previous, settle, ack_through=ack_through)
        handed.append(made)
        return made

    chain = [0, *(r.position for r in records[:-1])]
    first = [delivery(r, p) for r, p in zip(records, chain, strict=True)]
    await runner.handle(first)
    # The same messages again, as after a broker redelivery.
    await runner.handle([delivery(r, p) for r, p in zip(records, chain, strict=True)])
    await asyncio.gather(*runner._acks)

    assert len(acked) == 6
    assert all(durable >= position for position, durable in acked)
    assert runner.metrics.duplicates.labels(projection.name)._value.get() == 3
    async with world.engine.connect() as conn:
        assert await read_checkpoint(conn, projection.name) == records[-1].position
    rows = await snapshot(world.engine)
    assert rows["accounts"]["k1"]["balance"] == 11
