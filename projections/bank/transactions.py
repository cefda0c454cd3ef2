"""Account transactions: the statement of each account, one row per money movement,
with the balance after it. The API lists it newest first (by stream version)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from sqlalchemy import Table, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from commands import events as ev
from projections.bank.accounts import BALANCE_CHANGES, signed_amount
from projections.projection import Applied, Projection
from projections.rows import Row, insert_rows
from projections.tables import TableFactory, Tables, account_transactions

TRANSFER_LEGS = (
    ev.AccountDebitedForTransfer,
    ev.AccountCreditedForTransfer,
    ev.AccountDebitReversed,
)

KINDS: dict[type[ev.DomainEvent], str] = {
    ev.MoneyDeposited: "deposit",
    ev.MoneyWithdrawn: "withdrawal",
    ev.AccountDebitedForTransfer: "transfer_out",
    ev.AccountCreditedForTransfer: "transfer_in",
    ev.AccountDebitReversed: "transfer_reversal",
}


def statement_line(item: Applied, balance_before: int) -> Row:
    """The statement row of a money movement, given the balance before it."""
    event = item.event
    amount = signed_amount(event)
    transfer_id = event.transfer_id if isinstance(event, TRANSFER_LEGS) else None
    return {
        "account_id": line_account(item),
        "version": item.record.version,
        "position": item.position,
        "kind": KINDS[type(event)],
        "amount": amount,
        "balance_after": balance_before + amount,
        "transfer_id": transfer_id,
        "recorded_at": item.at,
    }


class AccountTransactionsProjection(Projection):
    name: ClassVar[str] = "account_transactions"
    handles: ClassVar[frozenset[str]] = frozenset(cls.event_type for cls in BALANCE_CHANGES)
    table_factories: ClassVar[Mapping[str, TableFactory]] = {"transactions": account_transactions}

    async def apply(self, conn: AsyncConnection, tables: Tables, batch: Sequence[Applied]) -> None:
        table = tables["transactions"]
        accounts = [line_account(item) for item in batch]
        balances = await _last_balances(conn, table, set(accounts))
        lines: list[Row] = []
        for account, item in zip(accounts, batch, strict=True):
            line = statement_line(item, balances.get(account, 0))
            balances[account] = line["balance_after"]
            lines.append(line)
        await insert_rows(conn, table, lines)


def line_account(item: Applied) -> str:
    account_id: str = item.event.account_id  # type: ignore[attr-defined]
    return account_id


async def _last_balances(conn: AsyncConnection, table: Table, accounts: set[str]) -> dict[str, Any]:
    """The balance after each account's newest statement line (absent: no line yet)."""
    balances: dict[str, Any] = {}
    ordered = sorted(accounts)
    for start in range(0, len(ordered), 500):
        chunk = ordered[start : start + 500]
        newest = (
            select(table.c.account_id, func.max(table.c.version).label("version"))
            .where(table.c.account_id.in_(chunk))
            .group_by(table.c.account_id)
            .subquery()
        )
        query = select(table.c.account_id, table.c.balance_after).join(
            newest,
            (table.c.account_id == newest.c.account_id) & (table.c.version == newest.c.version),
        )
        for account_id, balance in (await conn.execute(query)).all():
            balances[account_id] = balance
    return balances
