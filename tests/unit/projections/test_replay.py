"""Blue/green replay on SQLite: equals live, swaps atomically while the projector runs,
and an interrupted replay leaves the live model untouched."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import inspect

from projections.bank import AccountSummaryProjection, bank_projections
from projections.checkpoints import read_checkpoints
from projections.errors import ReplayError
from projections.replay import Replay
from tests.unit.projections.conftest import World, eventually
from tests.unit.projections.support import fold, simulate, snapshot
from tests.unit.projections.test_runner import _bank_events, _write


class StopAfter:
    """Progress that sets ``stop`` after ``batches`` batches (an operator's Ctrl-C)."""

    def __init__(self, stop: asyncio.Event, batches: int) -> None:
        self.stop = stop
        self.batches = batches
        self.seen: list[int] = []

    def started(self, projection: str, head: int) -> None:
        self.head = head

    def advanced(self, events: int, position: int) -> None:
        self.seen.append(position)
        if len(self.seen) >= self.batches:
            self.stop.set()

    def swapped(self, position: int) -> None:
        self.swapped_at = position


async def _table_names(world: World) -> set[str]:
    async with world.engine.connect() as conn:
        return set(await conn.run_sync(lambda sync: inspect(sync).get_table_names()))


async def test_replay_equals_live_and_swaps_while_the_projector_runs(world: World) -> None:
    events = _bank_events(seed=7)
    projector = world.projector()
    await world.start(projector)
    await _write(world, events[:120])
    for i, projection in enumerate(bank_projections()):
        replay = Replay(projection, world.engine, world.store, batch_size=17)
        await replay.prepare()
        await replay.rebuild()
        # The live model moves on between the rebuild and the swap.
        await _write(world, events[120 + 10 * i : 130 + 10 * i])
        head = await world.store.head_position()
        runner = projector.runner(projection.name)
        await eventually(lambda r=runner, h=head: r.checkpoint == h)  # type: ignore[misc]
        assert await replay.swap() == head
    head = await world.store.head_position()
    await eventually(lambda: all(r.checkpoint == head for r in projector.runners))
    log = await world.store.read_all(0, 100_000)
    assert await snapshot(world.engine) == fold(log)
    assert not {name for name in await _table_names(world) if name.endswith("__replay")}
    checkpoints = await read_checkpoints(world.engine)
    assert not [name for name in checkpoints if name.endswith("__replay")]


async def test_an_interrupted_replay_leaves_live_untouched_and_can_run_again(
    world: World,
) -> None:
    projector = world.projector([AccountSummaryProjection()])
    await world.start(projector)
    await _write(world, simulate([("open", 1, 0, 0), *[("deposit", 1, 0, 5)] * 40]))
    head = await world.store.head_position()
    await eventually(lambda: projector.runners[0].checkpoint == head)
    before = await snapshot(world.engine)

    stop = asyncio.Event()
    replay = Replay(
        AccountSummaryProjection(),
        world.engine,
        world.store,
        batch_size=5,
        progress=StopAfter(stop, 2),
    )
    with pytest.raises(ReplayError):
        await replay.run(stop)
    assert await snapshot(world.engine) == before
    assert "rm_account_summary__replay" in await _table_names(world)

    result = await Replay(AccountSummaryProjection(), world.engine, world.store).run()
    assert result.position == head
    assert result.events == len(await world.store.read_all(0, 100_000))
    assert await snapshot(world.engine) == before
    assert "rm_account_summary__replay" not in await _table_names(world)
