"""Dashboard stats: totals over the whole ledger and money movements per minute.

A movement is any event that changes a balance (deposit, withdrawal, a transfer's
debit, credit or reversal); it counts in the minute of its record time, so the figures
are the same whether built live or by a replay.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import ClassVar

from sqlalchemy.ext.asyncio import AsyncConnection

from commands import events as ev
from projections.bank.accounts import BALANCE_CHANGES, signed_amount
from projections.projection import Applied, Projection
from projections.rows import Row, RowSet
from projections.tables import TableFactory, Tables, dashboard_minutes, dashboard_totals

TOTALS_ID = "ledger"

COUNTERS: dict[type[ev.DomainEvent], str] = {
    ev.AccountOpened: "accounts_opened",
    ev.AccountClosed: "accounts_closed",
    ev.MoneyDeposited: "deposits",
    ev.MoneyWithdrawn: "withdrawals",
    ev.TransferRequested: "transfers_requested",
    ev.TransferCompleted: "transfers_completed",
    ev.TransferFailed: "transfers_failed",
}


def empty_totals() -> Row:
    return {"id": TOTALS_ID, "total_balance": 0, **dict.fromkeys(COUNTERS.values(), 0)}


def evolve_totals(row: Row, item: Applied) -> Row:
    counter = COUNTERS.get(type(item.event))
    updated = {**row, "total_balance": row["total_balance"] + signed_amount(item.event)}
    if counter is not None:
        updated[counter] = row[counter] + 1
    return updated


def minute_of(item: Applied) -> str:
    """``YYYY-MM-DDTHH:MM`` (UTC) of the event's record time."""
    return item.at[:16]


class DashboardProjection(Projection):
    name: ClassVar[str] = "dashboard"
    handles: ClassVar[frozenset[str]] = frozenset(
        cls.event_type for cls in (*COUNTERS, *BALANCE_CHANGES)
    )
    table_factories: ClassVar[Mapping[str, TableFactory]] = {
        "totals": dashboard_totals,
        "minutes": dashboard_minutes,
    }

    async def apply(self, conn: AsyncConnection, tables: Tables, batch: Sequence[Applied]) -> None:
        totals = RowSet(tables["totals"])
        minutes = RowSet(tables["minutes"])
        movements = [item for item in batch if type(item.event) in BALANCE_CHANGES]
        await totals.load(conn, {(TOTALS_ID,)})
        await minutes.load(conn, {(minute_of(item),) for item in movements})
        row = totals.get((TOTALS_ID,)) or empty_totals()
        for item in batch:
            row = evolve_totals(row, item)
        totals.put(row)
        for item in movements:
            bucket = minutes.get((minute_of(item),)) or {"minute": minute_of(item), "movements": 0}
            minutes.put({**bucket, "movements": bucket["movements"] + 1})
        await totals.store(conn)
        await minutes.store(conn)
