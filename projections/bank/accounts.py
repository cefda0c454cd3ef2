"""Account summary: one row per account with its owner, balance, status and version."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import ClassVar

from sqlalchemy.ext.asyncio import AsyncConnection

from commands import events as ev
from projections.projection import Applied, Projection
from projections.rows import Row, RowSet
from projections.tables import TableFactory, Tables, account_summary

BALANCE_CHANGES: dict[type[ev.DomainEvent], int] = {
    ev.MoneyDeposited: 1,
    ev.MoneyWithdrawn: -1,
    ev.AccountDebitedForTransfer: -1,
    ev.AccountCreditedForTransfer: 1,
    ev.AccountDebitReversed: 1,
}
"""Events that move money on an account, and the sign of their amount."""


def signed_amount(event: ev.DomainEvent) -> int:
    """How much ``event`` adds to its account's balance (0 for non-money events)."""
    sign = BALANCE_CHANGES.get(type(event))
    # Only money events are asked for ``amount``: a missing attribute on a pydantic
    # model is slow to fail, and a replay does this for every event.
    return sign * int(event.amount) if sign is not None else 0  # type: ignore[attr-defined]


def evolve_summary(row: Row | None, item: Applied) -> Row | None:
    """The account row after ``item``; None for an event about an unknown account that
    does not open it (the write side never produces one)."""
    event = item.event
    common = {"version": item.record.version, "position": item.position, "updated_at": item.at}
    if isinstance(event, ev.AccountOpened):
        return {
            "account_id": event.account_id,
            "owner": event.owner,
            "balance": 0,
            "status": "open",
            "opened_at": item.at,
            **common,
        }
    if row is None:
        return None
    if isinstance(event, ev.AccountClosed):
        return {**row, **common, "status": "closed"}
    return {**row, **common, "balance": row["balance"] + signed_amount(event)}


class AccountSummaryProjection(Projection):
    name: ClassVar[str] = "account_summary"
    handles: ClassVar[frozenset[str]] = frozenset(cls.event_type for cls in ev.ACCOUNT_EVENTS)
    table_factories: ClassVar[Mapping[str, TableFactory]] = {"accounts": account_summary}

    async def apply(self, conn: AsyncConnection, tables: Tables, batch: Sequence[Applied]) -> None:
        rows = RowSet(tables["accounts"])
        keys = [(_account_id(item),) for item in batch]
        await rows.load(conn, set(keys))
        for key, item in zip(keys, batch, strict=True):
            updated = evolve_summary(rows.get(key), item)
            if updated is not None:
                rows.put(updated)
        await rows.store(conn)


def _account_id(item: Applied) -> str:
    account_id = getattr(item.event, "account_id", None)
    if not isinstance(account_id, str):
        raise TypeError(f"{item.record.type} carries no account_id")
    return account_id
