"""The event store contract, part 4: property tests against a simple model.

For any sequence of appends (right and wrong expectations, retries of earlier batches),
the log equals what the model says: successful batches in call order, dense versions,
retries replayed, rejected appends absent.
"""

from __future__ import annotations

import itertools
import uuid
from dataclasses import dataclass, field

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eventstore import (
    ANY,
    NO_STREAM,
    ConcurrencyError,
    EventStore,
    ExpectedVersion,
    NewEvent,
    open_event_store,
)
from tests.services import run_sync

EXPECTATIONS = ["exact", "wrong", "no_stream", "any", "retry"]
operations = st.lists(
    st.tuples(st.integers(0, 2), st.integers(1, 3), st.sampled_from(EXPECTATIONS)),
    min_size=1,
    max_size=25,
)


@dataclass
class Model:
    category: str
    versions: dict[str, int] = field(default_factory=dict)
    log: list[uuid.UUID] = field(default_factory=list)
    batches: list[tuple[str, list[NewEvent]]] = field(default_factory=list)
    head: int = 0

    def expectation(self, stream: str, kind: str) -> ExpectedVersion:
        current = self.versions.get(stream, 0)
        return {"exact": current, "wrong": current + 1, "no_stream": NO_STREAM}.get(kind, ANY)

    def accepts(self, stream: str, expected: ExpectedVersion) -> bool:
        current = self.versions.get(stream, 0)
        return expected is ANY or (0 if expected is NO_STREAM else expected) == current


async def run_scenario(store: EventStore, ops: list[tuple[int, int, str]]) -> None:
    model = Model(category=f"p{uuid.uuid4().hex[:10]}")
    for index, count, kind in ops:
        if kind == "retry" and model.batches:
            stream, batch = model.batches[-1]
            result = await store.append(stream, batch, ANY)
            assert result.replayed
            continue
        stream = f"{model.category}-{index}"
        batch = [NewEvent("E", {"i": i}) for i in range(count)]
        expected = model.expectation(stream, kind)
        try:
            result = await store.append(stream, batch, expected)
        except ConcurrencyError as exc:
            assert not model.accepts(stream, expected)
            assert exc.current == model.versions.get(stream, 0)
            continue
        assert model.accepts(stream, expected)
        model.versions[stream] = model.versions.get(stream, 0) + count
        assert result.version == model.versions[stream]
        model.log += [e.event_id for e in batch]
        model.head = result.position
        model.batches.append((stream, batch))
    await check_log(store, model)


async def check_log(store: EventStore, model: Model) -> None:
    # Appends become readable once older transactions on the server have ended.
    assert await store.wait_for_position(model.head, 10)
    read = await store.read_all(0, 10_000, categories=[model.category])
    assert [e.event_id for e in read] == model.log
    assert all(a.position < b.position for a, b in itertools.pairwise(read))
    for stream, version in model.versions.items():
        versions = [e.version for e in await store.read_stream(stream)]
        assert versions == list(range(1, version + 1))


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(ops=operations)
def test_log_matches_the_model(store_url: str, ops: list[tuple[int, int, str]]) -> None:
    async def scenario() -> None:
        store = await open_event_store(store_url)
        try:
            await run_scenario(store, ops)
        finally:
            await store.close()

    run_sync(scenario)
