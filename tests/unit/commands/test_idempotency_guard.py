"""The idempotency guard's protocol, on the in-memory storage with a fake clock."""

from __future__ import annotations

import asyncio

import pytest

from commands.errors import ConcurrencyConflict, IdempotencyKeyInProgress, IdempotencyKeyReused
from commands.service.idempotency import IdempotencyGuard, KeyedRequest, Run
from commands.storage import MemoryCommandStorage
from commands.storage.base import StoredResponse


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


class Recorder:
    """An execute callback that records its runs and answers with their claim id."""

    def __init__(self, status: int = 200) -> None:
        self.runs: list[Run] = []
        self.status = status

    async def __call__(self, run: Run) -> StoredResponse:
        self.runs.append(run)
        return StoredResponse(self.status, str(run.claim_id).encode(), {"etag": '"1"'})


def _request(fingerprint: str = "fp", key: str = "k", actor: str = "alice") -> KeyedRequest:
    return KeyedRequest(actor, key, fingerprint, "/v1/accounts/a/deposits", 4)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def storage() -> MemoryCommandStorage:
    return MemoryCommandStorage()


def _guard(storage: MemoryCommandStorage, clock: Clock, **kwargs: float) -> IdempotencyGuard:
    return IdempotencyGuard(storage, clock=clock, **kwargs)


async def test_first_run_then_replays(storage: MemoryCommandStorage, clock: Clock) -> None:
    guard, execute = _guard(storage, clock), Recorder()
    first, replayed = await guard.run(_request(), execute)
    assert not replayed
    again, replayed = await guard.run(_request(), execute)
    assert replayed
    assert again == first
    assert len(execute.runs) == 1
    assert execute.runs[0].seen_version == 4
    assert not execute.runs[0].recovering


async def test_another_request_with_the_key(storage: MemoryCommandStorage, clock: Clock) -> None:
    guard = _guard(storage, clock)
    await guard.run(_request("fp1"), Recorder())
    with pytest.raises(IdempotencyKeyReused):
        await guard.run(_request("fp2"), Recorder())
    _, replayed = await guard.run(_request("fp2", actor="bob"), Recorder())
    assert not replayed


async def test_keys_expire(storage: MemoryCommandStorage, clock: Clock) -> None:
    guard, execute = _guard(storage, clock, ttl=60), Recorder()
    await guard.run(_request("fp1"), execute)
    clock.now += 61
    response, replayed = await guard.run(_request("fp2"), execute)
    assert not replayed
    assert execute.runs[0].claim_id != execute.runs[1].claim_id
    clock.now += 61
    assert await guard.purge_expired() == 1
    assert storage.records == {}
    assert response.body == str(execute.runs[1].claim_id).encode()


async def test_a_running_twin_is_waited_for(storage: MemoryCommandStorage, clock: Clock) -> None:
    guard = _guard(storage, clock)
    release = asyncio.Event()
    runs = 0

    async def slow(run: Run) -> StoredResponse:
        nonlocal runs
        runs += 1
        await release.wait()
        return StoredResponse(200, b"once", {})

    first = asyncio.create_task(guard.run(_request(), slow))
    second = asyncio.create_task(guard.run(_request(), slow))
    await asyncio.sleep(0)
    release.set()
    results = await asyncio.gather(first, second)
    assert runs == 1
    assert sorted(replayed for _, replayed in results) == [False, True]


async def test_a_running_twin_past_the_wait_is_409(
    storage: MemoryCommandStorage, clock: Clock
) -> None:
    guard = _guard(storage, clock, max_wait=0.0)
    started, never = asyncio.Event(), asyncio.Event()

    async def stuck(run: Run) -> StoredResponse:
        started.set()
        await never.wait()
        raise AssertionError

    task = asyncio.create_task(guard.run(_request(), stuck))
    await started.wait()
    with pytest.raises(IdempotencyKeyInProgress):
        await guard.run(_request(), Recorder())
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_a_lost_race_frees_the_key(storage: MemoryCommandStorage, clock: Clock) -> None:
    guard = _guard(storage, clock)

    async def conflict(run: Run) -> StoredResponse:
        raise ConcurrencyConflict("account-a", 5)

    with pytest.raises(ConcurrencyConflict):
        await guard.run(_request(), conflict)
    execute = Recorder()
    _, replayed = await guard.run(_request(), execute)
    assert not replayed
    assert not execute.runs[0].recovering


async def test_an_unknown_outcome_is_recovered_by_the_next_request(
    storage: MemoryCommandStorage, clock: Clock
) -> None:
    guard = _guard(storage, clock)

    async def unknown(run: Run) -> StoredResponse:
        raise OSError("connection lost after the append was sent")

    with pytest.raises(OSError, match="connection lost"):
        await guard.run(_request(), unknown)
    first_claim = next(iter(storage.records.values())).claim_id
    execute = Recorder()
    _, replayed = await guard.run(_request(), execute)
    assert not replayed
    [run] = execute.runs
    assert run.recovering
    assert run.claim_id == first_claim


async def test_refusals_are_stored_for_replay(storage: MemoryCommandStorage, clock: Clock) -> None:
    guard = _guard(storage, clock)
    first, _ = await guard.run(_request(), Recorder(status=422))
    again, replayed = await guard.run(_request(), Recorder(status=200))
    assert replayed
    assert again.status == 422
    assert again == first


async def _stalled_owner(guard: IdempotencyGuard) -> asyncio.Task[object]:
    """A keyed request whose command runs and never ends (alive, on a slow database:
    it may commit any time); returned once it runs."""
    started, never = asyncio.Event(), asyncio.Event()

    async def slow_owner(run: Run) -> StoredResponse:
        started.set()
        await never.wait()
        raise AssertionError

    owner: asyncio.Task[object] = asyncio.create_task(guard.run(_request(), slow_owner))
    await started.wait()
    return owner


async def _cancelled(owner: asyncio.Task[object]) -> None:
    owner.cancel()
    with pytest.raises(asyncio.CancelledError):
        await owner


async def test_a_takeover_that_loses_its_race_keeps_the_claim(
    storage: MemoryCommandStorage, clock: Clock
) -> None:
    guard = _guard(storage, clock, lease=10, max_wait=0.0)

    async def conflict(run: Run) -> StoredResponse:
        raise ConcurrencyConflict("account-a", 5)

    owner = await _stalled_owner(guard)
    first_claim = next(iter(storage.records.values())).claim_id
    clock.now += 11  # the owner's lease ran out: the retry takes the claim over
    with pytest.raises(ConcurrencyConflict):
        await guard.run(_request(), conflict)
    clock.now += 1
    execute = Recorder()
    await guard.run(_request(), execute)
    # The owner may still commit under the first claim's event ids: the next retry must
    # recover under that same claim, never start a claim (and event ids) of its own.
    [run] = execute.runs
    assert (run.claim_id, run.recovering) == (first_claim, True)
    await _cancelled(owner)


async def test_a_running_owner_renews_its_lease_and_is_not_taken_over(
    storage: MemoryCommandStorage, clock: Clock
) -> None:
    guard = _guard(storage, clock, lease=0.03, max_wait=0.0)
    owner = await _stalled_owner(guard)
    await asyncio.sleep(guard.renew_interval * 2)  # the run is older than a third of its lease
    clock.now += 0.02
    await guard.renew_leases()  # what the write side's background task does
    clock.now += 0.02  # past the first lease, within the renewed one
    with pytest.raises(IdempotencyKeyInProgress):
        await guard.run(_request(), Recorder())
    await _cancelled(owner)
    assert guard.renew_interval == pytest.approx(0.01)
