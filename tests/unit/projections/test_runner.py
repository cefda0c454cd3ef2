"""The projection runner on the embedded backends: catch-up on start, duplicates and
reordered deliveries, gaps, poison events. The read models must always equal a fold
over the log."""

from __future__ import annotations

import asyncio
import random

import httpx

from commands.events import (
    AccountOpened,
    DomainEvent,
    MoneyDeposited,
    TransferRequested,
    account_stream,
    transfer_stream,
)
from eventstore import NewEvent
from eventstore.bus import Delivery
from projections.apply import Applier
from projections.bank import AccountSummaryProjection
from projections.checkpoints import read_checkpoint
from projections.health import projector_app
from projections.metrics import ProjectorMetrics
from projections.runner import ProjectionRunner
from tests.unit.projections.conftest import FAST, World, eventually
from tests.unit.projections.support import fold, simulate, snapshot


def _bank_events(seed: int, count: int = 160) -> list[tuple[str, DomainEvent]]:
    rng = random.Random(seed)
    kinds = ("open", "deposit", "deposit", "withdraw", "transfer")
    ops = [
        (rng.choice(kinds), rng.randrange(4), rng.randrange(4), rng.randrange(1, 300))
        for _ in range(count)
    ]
    return simulate(ops)


async def _write(world: World, events: list[tuple[str, DomainEvent]], publish: bool = True) -> None:
    for stream, event in events:
        if publish:
            await world.write(stream, event)
        else:
            await world.append(stream, event)


async def _converged(world: World, projector_runners: list[object]) -> None:
    head = await world.store.head_position()
    await eventually(lambda: all(r.checkpoint >= head for r in projector_runners))  # type: ignore[attr-defined]
    log = await world.store.read_all(0, 100_000)
    assert await snapshot(world.engine) == fold(log)


async def test_catches_up_on_start_then_follows_live(world: World) -> None:
    events = _bank_events(seed=1)
    await _write(world, events[:100], publish=False)  # before the projector existed
    projector = world.projector()
    await world.start(projector)
    await _converged(world, projector.runners)
    world.published = await world.store.head_position()
    await _write(world, events[100:])
    await _converged(world, projector.runners)


async def test_duplicated_and_reordered_deliveries_apply_once(world: World) -> None:
    projector = world.projector()
    await world.start(projector)
    await _write(world, _bank_events(seed=3), publish=False)
    log = await world.store.read_all(0, 100_000)
    envelopes = world.envelopes(log)
    shuffled = envelopes * 2
    random.Random(4).shuffle(shuffled)
    await world.bus.publish(shuffled)
    await _converged(world, projector.runners)
    duplicates = projector.metrics.duplicates.labels("account_summary")._value.get()
    assert duplicates > 0


async def test_a_gap_in_the_queue_is_filled_from_the_store(world: World) -> None:
    projector = world.projector()
    await world.start(projector)
    opened = await world.write(account_stream("a1"), AccountOpened(account_id="a1", owner="Ada"))
    summary = projector.runner("account_summary")
    await eventually(
        lambda: summary.status.state == "live" and summary.checkpoint == opened[-1].position
    )
    # The relay's messages for these never arrive (a purged queue, a lost message)...
    lost = await world.append(account_stream("a1"), MoneyDeposited(account_id="a1", amount=5))
    world.envelopes(lost)
    # ...the next one shows the gap through its previous_position.
    await world.write(account_stream("a1"), MoneyDeposited(account_id="a1", amount=7))
    await _converged(world, projector.runners)
    catch_ups = projector.metrics.catch_ups.labels("account_summary", "gap")._value.get()
    assert catch_ups >= 1


async def test_a_projection_moves_its_checkpoint_over_events_it_ignores(world: World) -> None:
    projector = world.projector()
    await world.start(projector)
    records = await world.write(account_stream("a9"), AccountOpened(account_id="a9", owner="X"))
    transfers = projector.runner("transfers")
    await eventually(lambda: transfers.checkpoint == records[-1].position)


async def test_a_poison_event_halts_only_the_projections_it_breaks(world: World) -> None:
    projector = world.projector()
    await world.start(projector)
    await world.write(account_stream("p1"), AccountOpened(account_id="p1", owner="Ada"))
    # Data the contract refuses (a negative amount): every projection that handles
    # deposits fails on it, every time.
    bad = await world.store.append(
        account_stream("p1"), [NewEvent("MoneyDeposited", {"account_id": "p1", "amount": -5})]
    )
    await world.publish(bad.events)
    poison = bad.events[0].position
    halted = ("account_summary", "account_transactions", "dashboard")
    await eventually(lambda: all(projector.runner(n).status.state == "halted" for n in halted))
    later = await world.write(
        transfer_stream("t1"),
        TransferRequested(transfer_id="t1", from_account="p1", to_account="p2", amount=1),
    )
    # The projection that does not read deposits keeps going.
    await eventually(lambda: projector.runner("transfers").checkpoint == later[-1].position)
    for name in halted:
        runner = projector.runner(name)
        assert runner.checkpoint < poison  # never skipped
        assert runner.status.reason is not None
        assert f"position {poison}" in runner.status.reason
        assert projector.metrics.halted.labels(name)._value.get() == 1
    assert sorted(p.projection for p in world.parking.parked) == sorted(halted)
    assert {p.envelope.position for p in world.parking.parked} == {poison}

    app = projector_app(projector, {"read_database": projector.ping_read_database})
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://p") as c:
        ready = await c.get("/readyz")
        metrics = (await c.get("/metrics")).text
    assert ready.status_code == 503
    body = ready.json()
    assert body["projections"]["account_summary"]["state"] == "halted"
    assert "MoneyDeposited" in body["projections"]["account_summary"]["reason"]
    assert body["projections"]["transfers"]["state"] == "live"
    assert 'chronicle_projection_halted{projection="dashboard"} 1.0' in metrics

    # A restart meets the same event again and halts again: it is never skipped.
    await world.stop_all()
    again = world.projector()
    await world.start(again)
    await eventually(lambda: again.runner("account_summary").status.state == "halted")
    assert again.runner("account_summary").checkpoint < poison


async def test_readyz_is_ready_when_everything_runs(world: World) -> None:
    projector = world.projector()
    await world.start(projector)
    await eventually(lambda: all(r.status.state == "live" for r in projector.runners))
    app = projector_app(projector, {"read_database": projector.ping_read_database})
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://p") as c:
        ready = await c.get("/readyz")
        alive = await c.get("/healthz")
    assert ready.status_code == 200
    assert alive.status_code == 200


class _StopDuringBatch:
    """A feed (the runner's own interface) that hands out one batch once the test has
    put it in, and asks the runner to stop while that batch is being applied, the way
    SIGTERM lands in a running projector."""

    def __init__(self) -> None:
        self.deliveries: list[Delivery] = []
        self.ready = asyncio.Event()
        self.handed = False
        self.done_calls = 0

    async def batch(self, limit: int, stop: asyncio.Event) -> list[Delivery]:
        if self.handed:
            await stop.wait()
            return []
        await self.ready.wait()
        self.handed = True
        asyncio.get_running_loop().call_soon(stop.set)
        return self.deliveries

    def done(self) -> None:
        self.done_calls += 1

    def retire(self) -> None:
        raise AssertionError("nothing here is poison")


async def test_a_stop_while_filling_a_gap_never_applies_past_the_gap(world: World) -> None:
    applier = Applier(AccountSummaryProjection(), world.engine)
    runner = ProjectionRunner(applier, world.store, world.parking, ProjectorMetrics(), FAST)
    feed = _StopDuringBatch()
    stop = asyncio.Event()
    following = asyncio.create_task(runner.follow(feed, stop))
    await eventually(lambda: runner.status.state == "live")
    opened = await world.append(account_stream("a1"), AccountOpened(account_id="a1", owner="A"))
    lost = await world.append(account_stream("a1"), MoneyDeposited(account_id="a1", amount=5))
    after = await world.append(account_stream("a1"), MoneyDeposited(account_id="a1", amount=6))
    # The deposit of 5 never arrives: the deposit of 6 shows the gap.
    settle = _no_settling
    feed.deliveries = [
        Delivery(opened[0], 0, settle),
        Delivery(after[0], lost[0].position, settle),
    ]
    feed.ready.set()
    await asyncio.wait_for(following, 10)
    async with world.engine.connect() as conn:
        checkpoint = await read_checkpoint(conn, "account_summary")
    balance = (await snapshot(world.engine))["accounts"]["a1"]["balance"]
    # The opening was applied; the stop came before the gap was filled, so nothing past
    # the deposit of 5 (never read) was applied, and the batch is not done (not acked).
    assert (checkpoint, balance) == (opened[0].position, 0)
    assert feed.done_calls == 0


async def _no_settling(ack: bool, requeue: bool) -> None:
    raise AssertionError("the runner does not settle; the projector does")
