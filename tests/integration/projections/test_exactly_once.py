"""Exactly-once effect on PostgreSQL + RabbitMQ: duplicated and reordered deliveries, a
queue purged while running, a projector SIGKILLed mid-stream and restarted. Whatever
happens, every read model ends equal to a fold over the log."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import pytest
from sqlalchemy import text

from commands.events import DomainEvent, encode
from eventstore import NewEvent
from eventstore.bus import encode as envelope_of
from projections.checkpoints import read_checkpoints
from projections.runner import RunnerConfig
from projections.tables import CHECKPOINTS
from tests.integration.projections.conftest import Stack, Subprocess, free_port, wait_for
from tests.unit.projections.support import fold, simulate, snapshot

pytestmark = [pytest.mark.postgres, pytest.mark.rabbitmq]


def bank_events(seed: int, count: int) -> list[tuple[str, DomainEvent]]:
    rng = random.Random(seed)
    kinds = ("open", "deposit", "deposit", "withdraw", "transfer", "close")
    ops = [
        (rng.choice(kinds), rng.randrange(12), rng.randrange(12), rng.randrange(1, 400))
        for _ in range(count)
    ]
    return simulate(ops)


async def write(stack: Stack, events: list[tuple[str, DomainEvent]]) -> None:
    for stream, event in events:
        event_type, data, metadata = encode(event)
        await stack.store.append(stream, [NewEvent(event_type, data, metadata)])


async def position_of_event(stack: Stack, number: int) -> int:
    """The position of the log's ``number``-th event, once it is written (positions
    are transaction ids shifted, not counts)."""
    found: list[int] = []

    async def written() -> bool:
        found[:] = [r.position for r in await stack.store.read_all(0, number)]
        return len(found) == number

    await wait_for(written, what=f"{number} events written")
    return found[-1]


async def converged(stack: Stack, timeout: float = 30.0) -> None:
    head = await stack.store.head_position()

    async def at_head() -> bool:
        checkpoints = await read_checkpoints(stack.engine)
        names = ("account_summary", "account_transactions", "transfers", "dashboard")
        return all(checkpoints.get(name, 0) >= head for name in names)

    await wait_for(at_head, timeout, "every projection at the head")
    log = await stack.store.read_all(0, 1_000_000)
    assert await snapshot(stack.engine) == fold(log)


async def test_duplicates_reordering_and_a_purged_queue(stack: Stack) -> None:
    stack.start_relay()
    # A small prefetch leaves messages waiting in the queue, for the purge to remove.
    projector = stack.projector(RunnerConfig(batch_size=20, prefetch=5, retry_delay=0.02))
    stack.start(projector.run)
    events = bank_events(seed=11, count=800)
    writer = asyncio.create_task(write(stack, events[:400]))
    fiftieth = await position_of_event(stack, 50)
    await wait_for(
        lambda: projector.runner("account_summary").checkpoint >= fiftieth, what="progress"
    )
    # Duplicates, out of order, of what is already in the log (a relay retrying).
    head = await stack.store.head_position()
    sent = await stack.store.read_all(0, head)
    noise = [envelope_of(r, max(r.position - 1, 0)) for r in sent]
    random.Random(5).shuffle(noise)
    await stack.bus.publish(noise)
    await writer
    await converged(stack)
    assert projector.metrics.duplicates.labels("account_summary")._value.get() > 0

    # An operator purges the queue while events flow. The projector is held (its
    # checkpoints locked) so that the purge surely removes events it never saw. A table
    # lock takes no transaction id, so it does not hold back the log's head.
    await wait_for(lambda: _ready_is(stack, 0), what="the noise consumed")
    async with stack.engine.connect() as held:
        await held.execute(text(f"LOCK TABLE {CHECKPOINTS} IN EXCLUSIVE MODE"))
        await write(stack, events[400:600])
        await wait_for(lambda: _ready_is(stack, 100, at_least=True), what="events queued")
        assert await stack.purge() >= 100
        await held.rollback()
    # The next delivery's previous event was purged: the projector fills the gap from
    # the store instead of applying past it.
    await write(stack, events[600:])
    await converged(stack)
    for name in ("account_summary", "account_transactions"):
        assert projector.metrics.catch_ups.labels(name, "gap")._value.get() >= 1


async def _ready_is(stack: Stack, count: int, at_least: bool = False) -> bool:
    ready = await stack.ready()
    return ready >= count if at_least else ready == count


async def test_a_projector_killed_mid_stream_restarts_with_no_loss_or_double(
    stack: Stack, tmp_path: Path
) -> None:
    stack.start_relay()
    process = Subprocess(
        ["serve", "projector"],
        stack.env(CHRONICLE_HTTP_PORT=str(free_port()), CHRONICLE_PROJECTOR_BATCH_SIZE="50"),
        tmp_path / "projector.log",
    )
    events = bank_events(seed=12, count=1200)
    process.start()
    try:
        await write(stack, events[:300])
        writer = asyncio.create_task(write(stack, events[300:]))

        two_hundredth = await position_of_event(stack, 200)

        async def mid_stream() -> bool:
            checkpoints = await read_checkpoints(stack.engine)
            return checkpoints.get("account_summary", 0) >= two_hundredth

        await wait_for(mid_stream, what="projector under way")
        process.kill()  # SIGKILL: no drain, batches in flight are lost
        before = await read_checkpoints(stack.engine)
        await writer
        assert before["account_summary"] < await stack.store.head_position()
        process.start()
        await converged(stack, timeout=60)
    finally:
        process.stop()
