"""Transfers end to end: the process manager drives each to completed or failed, moves
money exactly once, compensates a refused credit, and survives being killed mid-way."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Callable, Collection

import httpx
import pytest

from commands.domain import account, transfer
from commands.domain.account import AccountState, Deposit, OpenAccount
from commands.domain.transfer import RequestTransfer
from commands.events import decode_stored
from commands.process_manager import TransferProcessManager
from commands.service.context import CommandContext
from commands.settings import CommandsSettings
from commands.storage import CommandStorage, open_command_storage
from commands.write_side import WriteSide, build_write_side
from eventstore import (
    EventStore,
    RecordedEvent,
    open_event_store,
)
from tests.integration.commands.fakes import BrokenTransferFeed, PausingStore
from tests.integration.commands.harness import Api, running_api

pytestmark = pytest.mark.postgres

CONTEXT = CommandContext("tester", "corr", "cause")


def _id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


async def wait_for_end(store: EventStore, transfer_id: str, timeout: float = 20) -> str:
    """Follow the log until the transfer has completed or failed; its last event type."""
    stream = f"transfer-{transfer_id}"
    async with asyncio.timeout(timeout):
        async for event in store.subscribe(0, categories=["transfer"]):
            if event.stream_id == stream and event.type in ("TransferCompleted", "TransferFailed"):
                return event.type
    raise AssertionError("unreachable")


async def balance(store: EventStore, account_id: str) -> int:
    events = await store.read_stream(f"account-{account_id}")
    state: AccountState = account.decider.fold(decode_stored(e) for e in events)
    return state.balance


async def _requested(api: Api, funds: int, amount: int) -> tuple[str, str, str, httpx.Response]:
    """Two new accounts, ``funds`` on the first, and a transfer of ``amount`` requested
    through the API; their ids and the 202 response."""
    source, target = _id("acc"), _id("acc")
    await api.open(source)
    await api.open(target)
    await api.deposit(source, funds)
    transfer_id = _id("tr")
    response = await api.client.post(
        "/v1/transfers",
        json={"transfer_id": transfer_id, "from_account": source, "to_account": target,
              "amount": amount},
    )  # fmt: skip
    assert response.status_code == 202
    assert response.headers["location"] == f"/v1/transfers/{transfer_id}"
    return source, target, transfer_id, response


async def test_a_transfer_completes(api: Api) -> None:
    source, target, transfer_id, response = await _requested(api, 1_000, 250)
    assert await wait_for_end(api.store, transfer_id) == "TransferCompleted"
    assert await balance(api.store, source) == 750
    assert await balance(api.store, target) == 250
    steps = [e.type for e in await api.store.read_stream(f"transfer-{transfer_id}")]
    assert steps == [
        "TransferRequested",
        "TransferSourceDebited",
        "TransferTargetCredited",
        "TransferCompleted",
    ]
    debit = (await api.store.read_stream(f"account-{source}"))[-1]
    assert debit.metadata["correlation_id"] == response.headers["x-correlation-id"]
    assert debit.metadata["actor"] == "alice"


async def test_insufficient_funds_fails_without_moving_money(api: Api) -> None:
    source, target = _id("acc"), _id("acc")
    await api.open(source)
    await api.open(target)
    await api.deposit(source, 100)
    response = await api.client.post(
        "/v1/transfers", json={"from_account": source, "to_account": target, "amount": 101}
    )
    transfer_id = response.headers["location"].rsplit("/", 1)[1]
    assert await wait_for_end(api.store, transfer_id) == "TransferFailed"
    failed = (await api.store.read_stream(f"transfer-{transfer_id}"))[-1]
    assert failed.data == {
        "transfer_id": transfer_id,
        "reason": "insufficient_funds",
        "compensated": False,
    }
    assert await balance(api.store, source) == 100
    assert await balance(api.store, target) == 0


async def test_a_closed_target_is_compensated(api: Api) -> None:
    source, target = _id("acc"), _id("acc")
    await api.open(source)
    await api.open(target)
    await api.deposit(source, 100)
    assert (await api.client.post(f"/v1/accounts/{target}/close")).status_code == 200
    response = await api.client.post(
        "/v1/transfers", json={"from_account": source, "to_account": target, "amount": 60}
    )
    transfer_id = response.headers["location"].rsplit("/", 1)[1]
    assert await wait_for_end(api.store, transfer_id) == "TransferFailed"
    assert [e.type for e in await api.store.read_stream(f"transfer-{transfer_id}")] == [
        "TransferRequested",
        "TransferSourceDebited",
        "TransferCreditRejected",
        "TransferDebitCompensated",
        "TransferFailed",
    ]
    assert [e.type for e in await api.store.read_stream(f"account-{source}")][-2:] == [
        "AccountDebitedForTransfer",
        "AccountDebitReversed",
    ]
    assert await balance(api.store, source) == 100
    assert await balance(api.store, target) == 0


@contextlib.asynccontextmanager
async def manager_running(side: WriteSide) -> AsyncIterator[asyncio.Task[None]]:
    assert side.manager is not None
    task = asyncio.create_task(side.manager.run())
    try:
        yield task
    finally:
        while not task.done():  # see commands.write_side._cancel
            task.cancel()
            await asyncio.wait({task}, timeout=0.1)


async def _world(
    store: EventStore, storage: CommandStorage, amount: int
) -> tuple[WriteSide, str, str, str]:
    side = build_write_side(CommandsSettings(), store, storage)
    source, target, transfer_id = _id("acc"), _id("acc"), _id("tr")
    for account_id in (source, target):
        await side.handler.execute(
            account.aggregate, OpenAccount(account_id=account_id, owner="x"), CONTEXT
        )
    await side.handler.execute(account.aggregate, Deposit(account_id=source, amount=100), CONTEXT)
    request = RequestTransfer(
        transfer_id=transfer_id, from_account=source, to_account=target, amount=amount
    )
    await side.handler.execute(transfer.aggregate, request, CONTEXT)
    return side, source, target, transfer_id


def _count(events: Collection[RecordedEvent], event_type: str) -> int:
    return sum(e.type == event_type for e in events)


@pytest.mark.parametrize("amount", [100, 40], ids=["whole-balance", "part"])
@pytest.mark.parametrize(
    ("stream_prefix", "event_type"),
    [
        ("account-", "AccountDebitedForTransfer"),
        ("transfer-", "TransferSourceDebited"),
        ("account-", "AccountCreditedForTransfer"),
    ],
    ids=["after-debit", "after-recording-debit", "after-credit"],
)
async def test_a_killed_manager_resumes_without_moving_money_twice(
    pg_url: str, amount: int, stream_prefix: str, event_type: str
) -> None:
    store = await open_event_store(pg_url)
    storage = await open_command_storage(store, pg_url)
    try:
        _, source, target, transfer_id = await _world(store, storage, amount)
        pausing = PausingStore(
            store, lambda stream, kind: stream.startswith(stream_prefix) and kind == event_type
        )
        first = build_write_side(CommandsSettings(), pausing, storage)
        async with manager_running(first):
            await asyncio.wait_for(pausing.paused.wait(), 20)
        # Killed between two steps. A new process (fresh cache) takes over.
        second = build_write_side(CommandsSettings(), store, storage)
        async with manager_running(second):
            outcome = await wait_for_end(store, transfer_id)
        assert outcome == "TransferCompleted"
        source_log = await store.read_stream(f"account-{source}")
        target_log = await store.read_stream(f"account-{target}")
        transfer_log = await store.read_stream(f"transfer-{transfer_id}")
        assert _count(source_log, "AccountDebitedForTransfer") == 1
        assert _count(target_log, "AccountCreditedForTransfer") == 1
        assert [e.type for e in transfer_log] == [
            "TransferRequested",
            "TransferSourceDebited",
            "TransferTargetCredited",
            "TransferCompleted",
        ]
        assert await balance(store, source) == 100 - amount
        assert await balance(store, target) == amount
    finally:
        await storage.close()
        await store.close()


async def test_the_manager_resumes_from_its_checkpoint(pg_url: str) -> None:
    store = await open_event_store(pg_url)
    storage = await open_command_storage(store, pg_url)
    try:
        side, _, _, first_transfer = await _world(store, storage, 10)
        async with manager_running(side):
            await wait_for_end(store, first_transfer)
            assert side.manager is not None
            await _wait_until(lambda: side.manager is not None and side.manager.position > 0)
            # Saved every 0.5 s while running: wait for it rather than count on the last
            # save as the manager stops (a repeated cancel may cut that one short).
            async with asyncio.timeout(10):
                while await store.load_checkpoint("commands.transfer-manager") < position_of(side):
                    await asyncio.sleep(0.05)
        saved = await store.load_checkpoint("commands.transfer-manager")
        assert saved == side.manager.position
        manager = TransferProcessManager(store, side.handler, side.metrics)
        task = asyncio.create_task(manager.run())
        await asyncio.wait_for(manager.started.wait(), 10)
        assert manager.position == saved
        while not task.done():
            task.cancel()
            await asyncio.wait({task}, timeout=0.1)
    finally:
        await storage.close()
        await store.close()


def position_of(side: WriteSide) -> int:
    assert side.manager is not None
    return side.manager.position


async def _wait_until(condition: Callable[[], bool], timeout: float = 10) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)


async def test_transfers_on_sqlite(sqlite_url: str) -> None:
    async with running_api(sqlite_url, auth=False) as api:
        source, target = _id("acc"), _id("acc")
        await api.open(source)
        await api.open(target)
        await api.deposit(source, 10)
        ids = []
        for amount in (4, 7, 6):
            response = await api.client.post(
                "/v1/transfers",
                json={"from_account": source, "to_account": target, "amount": amount},
            )
            ids.append(response.headers["location"].rsplit("/", 1)[1])
        outcomes = [await wait_for_end(api.store, transfer_id) for transfer_id in ids]
        assert outcomes == ["TransferCompleted", "TransferFailed", "TransferCompleted"]
        assert await balance(api.store, source) == 0
        assert await balance(api.store, target) == 10


async def test_a_manager_failing_on_a_step_is_counted_and_the_replica_stays_ready(
    pg_url: str,
) -> None:
    inner = await open_event_store(pg_url)
    store = BrokenTransferFeed(inner)
    try:
        async with running_api(pg_url, auth=False, store=store) as api:
            _, target, transfer_id, _ = await _requested(api, 10, 10)

            async def failures() -> float:
                text = (await api.client.get("/metrics")).text
                [line] = [
                    x
                    for x in text.splitlines()
                    if x.startswith("chronicle_transfer_manager_failures ")
                ]
                return float(line.split()[1])

            async with asyncio.timeout(20):
                while await failures() < 6:  # past the five that used to make it unready
                    await asyncio.sleep(0.05)
            ready = await api.client.get("/readyz")
            assert ready.status_code == 200, ready.text
            store.broken = False  # healed: the manager goes on where it stopped
            assert await wait_for_end(inner, transfer_id) == "TransferCompleted"
            assert await failures() == 0
            assert await balance(inner, target) == 10
    finally:
        await inner.close()
