"""One transfer manager of all the command replicas drives transfers; the others stand
by and one of them takes over when the leader goes. Should two managers drive one
transfer for a while (a leader cut off without knowing it), each step still has the one
outcome its first run recorded: neither can record a refused debit while the other takes
the money."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Callable

import pytest

from commands.domain import account, transfer
from commands.domain.account import Deposit, OpenAccount
from commands.domain.transfer import RequestTransfer, TransferState
from commands.domain.transfer_policy import Step
from commands.events import AccountTransferLegRefused
from commands.service.context import CommandContext
from commands.settings import CommandsSettings
from commands.storage import open_command_storage
from commands.write_side import WriteSide, build_write_side, open_write_side
from eventstore import RecordedEvent, open_event_store
from tests.integration.commands.test_transfers import balance, manager_running, wait_for_end

pytestmark = pytest.mark.postgres

CONTEXT = CommandContext("tester", "corr", "cause")


async def _until(condition: Callable[[], bool], timeout: float = 10) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)


async def _transfer(side: WriteSide, amount: int) -> tuple[str, str, str]:
    """Two new accounts, 100 on the first, and a transfer of ``amount`` between them,
    all through ``side``'s handler; their ids."""
    source, target, transfer_id = (f"{p}-{uuid.uuid4().hex[:10]}" for p in ("a", "a", "t"))
    for account_id in (source, target):
        opening = OpenAccount(account_id=account_id, owner="x")
        await side.handler.execute(account.aggregate, opening, CONTEXT)
    await side.handler.execute(account.aggregate, Deposit(account_id=source, amount=100), CONTEXT)
    request = RequestTransfer(
        transfer_id=transfer_id, from_account=source, to_account=target, amount=amount
    )
    await side.handler.execute(transfer.aggregate, request, CONTEXT)
    return source, target, transfer_id


async def test_one_manager_of_the_replicas_leads_and_another_takes_over(pg_url: str) -> None:
    settings = CommandsSettings(eventstore_url=pg_url, auth="disabled")
    async with contextlib.AsyncExitStack() as replicas:
        first = await replicas.enter_async_context(open_write_side(settings))
        assert first.manager is not None
        await _until(lambda: first.manager is not None and first.manager.leading)
        async with open_write_side(settings) as second:
            assert second.manager is not None
            # A transfer requested through the standby's replica: the leader drives it.
            source, target, transfer_id = await _transfer(second, 30)
            assert await wait_for_end(second.store, transfer_id) == "TransferCompleted"
            assert (await balance(second.store, source), await balance(second.store, target)) == (
                70,
                30,
            )
            assert first.manager.leading
            assert not second.manager.leading
            assert second.manager.position == 0  # the standby followed nothing
            await replicas.aclose()  # the leader's replica stops
            await _until(lambda: second.manager is not None and second.manager.leading)
            _, target, transfer_id = await _transfer(second, 100)
            assert await wait_for_end(second.store, transfer_id) == "TransferCompleted"
            assert await balance(second.store, target) == 100
            assert second.manager.position > 0


async def _requested(side: WriteSide, transfer_id: str) -> tuple[TransferState, RecordedEvent]:
    """The transfer as a manager loads it before its first step, and its request."""
    stream = f"transfer-{transfer_id}"
    loaded = await side.handler.states.load(transfer.aggregate, stream, fresh=True)
    [requested] = await side.store.read_stream(stream)
    return loaded.state, requested


async def test_two_managers_on_one_transfer_record_one_outcome_per_step(pg_url: str) -> None:
    store = await open_event_store(pg_url)
    storage = await open_command_storage(store, pg_url)
    try:
        # Two replicas' write sides (their own caches), neither electing a leader.
        first, second = (build_write_side(CommandsSettings(), store, storage) for _ in "12")
        assert first.manager is not None
        assert second.manager is not None

        # 100 on the source, a transfer of 150: the first manager's debit is refused.
        source, target, transfer_id = await _transfer(first, 150)
        state, requested = await _requested(first, transfer_id)
        at = requested.position
        assert await first.manager.perform(state, Step.DEBIT, CONTEXT, at) == "insufficient_funds"
        # A deposit lands; the second manager, which still sees the transfer as
        # requested, runs the same step: it gets the recorded refusal, takes nothing.
        deposit = Deposit(account_id=source, amount=100)
        await first.handler.execute(account.aggregate, deposit, CONTEXT)
        assert await second.manager.perform(state, Step.DEBIT, CONTEXT, at) == "insufficient_funds"
        assert await balance(store, source) == 200
        refusals = [
            e for e in await store.read_stream(f"account-{source}")
            if e.type == AccountTransferLegRefused.event_type
        ]  # fmt: skip
        assert [(e.data["leg"], e.data["reason"]) for e in refusals] == [
            ("debit", "insufficient_funds")
        ]
        async with manager_running(first):
            assert await wait_for_end(store, transfer_id) == "TransferFailed"
        assert (await balance(store, source), await balance(store, target)) == (200, 0)

        # The other way: the first debit goes through and leaves 0. The second manager's
        # debit would now be refused, but the step took place, and that is what it gets.
        source, target, transfer_id = await _transfer(first, 100)
        state, requested = await _requested(first, transfer_id)
        at = requested.position
        assert await first.manager.perform(state, Step.DEBIT, CONTEXT, at) is None
        assert await second.manager.perform(state, Step.DEBIT, CONTEXT, at) is None
        assert await balance(store, source) == 0
        async with manager_running(second):
            assert await wait_for_end(store, transfer_id) == "TransferCompleted"
        assert (await balance(store, source), await balance(store, target)) == (0, 100)
    finally:
        await storage.close()
        await store.close()
