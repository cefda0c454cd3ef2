"""One transfer manager of all the command replicas drives transfers; the others stand
by and one of them takes over when the leader goes. Two managers driving one transfer
could each decide its steps on what they saw (one recording a refused debit while the
other takes the money), so exactly one may lead."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Callable

import pytest

from commands.domain import account, transfer
from commands.domain.account import Deposit, OpenAccount
from commands.domain.transfer import RequestTransfer
from commands.service.context import CommandContext
from commands.settings import CommandsSettings
from commands.write_side import WriteSide, open_write_side
from tests.integration.commands.test_transfers import balance, wait_for_end

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
