"""Property: for random command sequences (run through the write side's deciders), every
read model equals a fold over the log, however the log is cut into batches and even
when batches are fed again."""

from __future__ import annotations

import asyncio
import uuid

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.ext.asyncio import AsyncEngine

from eventstore import RecordedEvent
from projections.apply import Applier
from projections.bank import bank_projections
from projections.db import ensure_schema, open_engine
from projections.testing import ProjectionTestbed
from tests.unit.projections.support import KINDS, fold, simulate, snapshot

ops = st.lists(
    st.tuples(
        st.sampled_from(KINDS),
        st.integers(0, 4),
        st.integers(0, 4),
        st.integers(1, 500),
    ),
    max_size=60,
)
cuts = st.lists(st.integers(1, 12), min_size=1, max_size=30)


async def _build(records: list[RecordedEvent], sizes: list[int], redo: bool) -> AsyncEngine:
    url = "sqlite://:memory:"
    engine = open_engine(url, writer=True, memory_key=uuid.uuid4().hex)
    await ensure_schema(url, engine)
    appliers = [Applier(p, engine) for p in bank_projections()]
    for applier in appliers:
        await applier.ensure_checkpoint()
    start, i = 0, 0
    while start < len(records):
        batch = records[start : start + sizes[i % len(sizes)]]
        for applier in appliers:
            await applier.commit(batch)
            if redo:  # a redelivered batch must change nothing
                await applier.commit(batch)
        start += len(batch)
        i += 1
    return engine


async def _check(op_list: list[tuple[str, int, int, int]], sizes: list[int], redo: bool) -> None:
    # The testbed only hands out positions, versions and record times here.
    async with ProjectionTestbed(bank_projections()[0]) as clock:
        records = [clock.record(stream, event) for stream, event in simulate(op_list)]
    engine = await _build(records, sizes, redo)
    try:
        assert await snapshot(engine) == fold(records)
    finally:
        await engine.dispose()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(op_list=ops, sizes=cuts, redo=st.booleans())
def test_every_read_model_equals_the_fold_of_the_log(
    op_list: list[tuple[str, int, int, int]], sizes: list[int], redo: bool
) -> None:
    asyncio.run(_check(op_list, sizes, redo))
