"""The cost of a command does not grow with its stream: the state cache, catch-up on a
stale cache, snapshots, and the bounded retries on conflicts."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from commands.domain import account
from commands.domain.account import Deposit, OpenAccount, Withdraw
from commands.errors import ConcurrencyConflict, PreconditionFailed
from commands.service.context import CommandContext
from commands.settings import CommandsSettings
from commands.storage import CommandStorage, open_command_storage
from commands.storage.base import Snapshot
from commands.write_side import WriteSide, build_write_side
from eventstore import EventStore, NewEvent
from tests.integration.commands.fakes import ConflictingStore, CountingStore

CONTEXT = CommandContext("tester", "corr", "cause")


@pytest.fixture
async def storage(store: EventStore, store_url: str) -> AsyncIterator[CommandStorage]:
    opened = await open_command_storage(store, store_url)
    try:
        yield opened
    finally:
        await opened.close()


def side_over(store: EventStore, storage: CommandStorage, **settings: Any) -> WriteSide:
    return build_write_side(CommandsSettings(**settings), store, storage)


async def _open(side: WriteSide, account_id: str) -> None:
    await side.handler.execute(
        account.aggregate, OpenAccount(account_id=account_id, owner="x"), CONTEXT
    )


async def _deposit(side: WriteSide, account_id: str, amount: int = 1) -> Any:
    return await side.handler.execute(
        account.aggregate, Deposit(account_id=account_id, amount=amount), CONTEXT
    )


def _conflicts(side: WriteSide) -> float | None:
    return side.metrics.registry.get_sample_value("chronicle_command_conflicts_total")


async def test_a_warm_command_reads_nothing(store: EventStore, storage: CommandStorage) -> None:
    counting = CountingStore(store)
    side = side_over(counting, storage)
    account_id = f"acc-{uuid.uuid4().hex[:8]}"
    await _open(side, account_id)
    await _deposit(side, account_id)
    before = counting.stream_reads
    for _ in range(50):
        await _deposit(side, account_id)
    assert counting.stream_reads == before


@pytest.mark.parametrize("attempts", [5, 1])
async def test_a_stale_cache_catches_up_and_retries(
    store: EventStore, storage: CommandStorage, attempts: int
) -> None:
    # Even with one attempt: a refusal on a stale cache is confirmed within it.
    one = side_over(store, storage, command_attempts=attempts)
    two = side_over(store, storage)
    account_id = f"acc-{uuid.uuid4().hex[:8]}"
    await _open(one, account_id)
    await _deposit(one, account_id, 5)
    await _deposit(two, account_id, 100)
    # `one` still believes the balance is 5: its decision is confirmed on fresh state.
    outcome = await one.handler.execute(
        account.aggregate, Withdraw(account_id=account_id, amount=60), CONTEXT
    )
    assert outcome.version == 4
    outcome = await _deposit(two, account_id, 1)
    assert outcome.version == 5
    assert _conflicts(two) == 1


async def test_if_match_is_exact(store: EventStore, storage: CommandStorage) -> None:
    side = side_over(store, storage)
    account_id = f"acc-{uuid.uuid4().hex[:8]}"
    await _open(side, account_id)
    with pytest.raises(PreconditionFailed) as caught:
        await side.handler.execute(
            account.aggregate, Deposit(account_id=account_id, amount=1), CONTEXT,
            expected_version=0,
        )  # fmt: skip
    assert caught.value.current == 1
    other = side_over(store, storage)
    await _deposit(other, account_id)
    with pytest.raises(PreconditionFailed) as caught:
        await side.handler.execute(
            account.aggregate, Deposit(account_id=account_id, amount=1), CONTEXT,
            expected_version=1,
        )  # fmt: skip
    assert caught.value.current == 2


async def test_retries_are_bounded(store: EventStore, storage: CommandStorage) -> None:
    side = side_over(store, storage)
    account_id = f"acc-{uuid.uuid4().hex[:8]}"
    await _open(side, account_id)
    losing = side_over(ConflictingStore(store), storage, command_attempts=3)
    with pytest.raises(ConcurrencyConflict):
        await _deposit(losing, account_id)
    assert _conflicts(losing) == 3


async def test_snapshots_bound_a_cold_load(store: EventStore, storage: CommandStorage) -> None:
    side = side_over(store, storage, snapshot_every=100)
    account_id = f"acc-{uuid.uuid4().hex[:8]}"
    await _open(side, account_id)
    for _ in range(249):
        await _deposit(side, account_id)
    snapshot = await storage.load_snapshot(f"account-{account_id}")
    assert snapshot is not None
    assert snapshot.version == 200
    counting = CountingStore(store)
    cold = side_over(counting, storage, snapshot_every=100)
    outcome = await _deposit(cold, account_id)
    assert outcome.version == 251
    assert counting.events_read == 50
    state = (await cold.states.load(account.aggregate, f"account-{account_id}", fresh=True)).state
    assert state.balance == 250


async def test_a_long_stream_written_elsewhere_is_snapshotted_on_first_load(
    store: EventStore, storage: CommandStorage
) -> None:
    account_id = f"acc-{uuid.uuid4().hex[:8]}"
    stream = f"account-{account_id}"
    opened = NewEvent("AccountOpened", {"account_id": account_id, "owner_name": "x"})
    await store.append(stream, [opened])
    deposit = {"account_id": account_id, "amount": 2}
    for _ in range(3):
        await store.append(stream, [NewEvent("MoneyDeposited", deposit) for _ in range(400)])
    first = CountingStore(store)
    await _deposit(side_over(first, storage), account_id)
    assert first.events_read == 1201
    second = CountingStore(store)
    outcome = await _deposit(side_over(second, storage), account_id)
    assert outcome.version == 1203
    assert second.events_read == 1
    loaded = await side_over(store, storage).states.load(account.aggregate, stream, fresh=True)
    assert loaded.state.balance == 2402
    assert loaded.state.owner == "x"


async def test_a_snapshot_of_another_state_version_is_ignored(
    store: EventStore, storage: CommandStorage
) -> None:
    side = side_over(store, storage)
    account_id = f"acc-{uuid.uuid4().hex[:8]}"
    await _open(side, account_id)
    await _deposit(side, account_id, 7)
    stream = f"account-{account_id}"
    await storage.save_snapshot(Snapshot(stream, 2, 999, '{"balance": 1000000}'))
    loaded = await side_over(store, storage).states.load(account.aggregate, stream, fresh=False)
    assert loaded.state.balance == 7
