"""Account transactions: the statement of each account, one row per money movement,
with the balance after it. The API lists it newest first (by stream version)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from sqlalchemy import Select, Table, Text, bindparam, func, select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncConnection

from commands import events as ev
from projections.bank.accounts import BALANCE_CHANGES, signed_amount
from projections.projection import Applied, Projection
from projections.rows import Row, cached, insert_rows, uses_arrays
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
    if not accounts:
        return {}
    if uses_arrays(conn):
        query = cached(table, "last_balances_by_array", lambda: _newest_by_array(table))
        rows = (await conn.execute(query, {"accounts": list(accounts)})).all()
        return {account_id: balance for account_id, balance in rows if balance is not None}
    query = cached(table, "last_balances_by_list", lambda: _newest_by_list(table))
    balances: dict[str, Any] = {}
    ordered = sorted(accounts)
    for start in range(0, len(ordered), 500):
        chunk = ordered[start : start + 500]
        for account_id, balance in (await conn.execute(query, {"accounts": chunk})).all():
            balances[account_id] = balance
    return balances


def _newest_by_array(table: Table) -> Select[Any]:
    """PostgreSQL: per account given, the balance of its newest line (NULL: none), one
    backward index probe each (``ORDER BY version DESC LIMIT 1``); a replay's accounts
    have hundreds of lines, which a GROUP BY over them would all read."""
    given = (
        func.unnest(bindparam("accounts", type_=ARRAY(Text)))
        .table_valued("account_id")
        .render_derived()
        .alias("given")
    )
    newest = (
        select(table.c.balance_after)
        .where(table.c.account_id == given.c.account_id)
        .order_by(table.c.version.desc())
        .limit(1)
        .scalar_subquery()
    )
    return select(given.c.account_id, newest)


def _newest_by_list(table: Table) -> Select[Any]:
    """SQLite (no arrays): the newest line of each account in an expanding ``IN``."""
    newest = (
        select(table.c.account_id, func.max(table.c.version).label("version"))
        .where(table.c.account_id.in_(bindparam("accounts", expanding=True)))
        .group_by(table.c.account_id)
        .subquery()
    )
    return select(table.c.account_id, table.c.balance_after).join(
        newest,
        (table.c.account_id == newest.c.account_id) & (table.c.version == newest.c.version),
    )
