"""The read models' queries: each runs on its own connection and returns plain dicts.

Every query returns the projection's checkpoint read *before* the rows, on the same
connection: the rows are at least as new as that position, so it is a safe lower bound
to report in ``X-Projection-Position``.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from projections.bank import (
    AccountSummaryProjection,
    AccountTransactionsProjection,
    DashboardProjection,
    TransfersProjection,
)
from projections.bank.dashboard import TOTALS_ID
from projections.checkpoints import read_checkpoint
from projections.tables import (
    account_summary,
    account_transactions,
    build,
    dashboard_minutes,
    dashboard_totals,
    transfers,
)

_T = build(
    {
        "accounts": account_summary,
        "transactions": account_transactions,
        "transfers": transfers,
        "totals": dashboard_totals,
        "minutes": dashboard_minutes,
    }
)
ACCOUNTS, TRANSACTIONS, TRANSFERS = _T["accounts"], _T["transactions"], _T["transfers"]
TOTALS, MINUTES = _T["totals"], _T["minutes"]

MINUTES_SHOWN = 60


class Reader:
    """Queries over the read database's live tables."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def account(self, account_id: str) -> tuple[int, dict[str, Any] | None]:
        async with self.engine.connect() as conn:
            position = await read_checkpoint(conn, AccountSummaryProjection.name)
            query = select(ACCOUNTS).where(ACCOUNTS.c.account_id == account_id)
            row = (await conn.execute(query)).mappings().first()
        return position, dict(row) if row else None

    async def accounts(self, after: str | None, limit: int) -> tuple[int, list[dict[str, Any]]]:
        query = select(ACCOUNTS).order_by(ACCOUNTS.c.account_id).limit(limit)
        if after is not None:
            query = query.where(ACCOUNTS.c.account_id > after)
        return await self._page(conn_query=query, projection=AccountSummaryProjection.name)

    async def transactions(
        self, account_id: str, before: int | None, limit: int
    ) -> tuple[int, list[dict[str, Any]]]:
        """Newest first: by stream version, descending, below ``before``."""
        query = (
            select(TRANSACTIONS)
            .where(TRANSACTIONS.c.account_id == account_id)
            .order_by(TRANSACTIONS.c.version.desc())
            .limit(limit)
        )
        if before is not None:
            query = query.where(TRANSACTIONS.c.version < before)
        return await self._page(conn_query=query, projection=AccountTransactionsProjection.name)

    async def transfer(self, transfer_id: str) -> tuple[int, dict[str, Any] | None]:
        async with self.engine.connect() as conn:
            position = await read_checkpoint(conn, TransfersProjection.name)
            query = select(TRANSFERS).where(TRANSFERS.c.transfer_id == transfer_id)
            row = (await conn.execute(query)).mappings().first()
        if row is None:
            return position, None
        found = dict(row)
        found["steps"] = json.loads(found["steps"])
        found["compensated"] = bool(found["compensated"])
        return position, found

    async def stats(self) -> tuple[int, dict[str, Any]]:
        async with self.engine.connect() as conn:
            position = await read_checkpoint(conn, DashboardProjection.name)
            totals = await _totals(conn)
            minutes = await _minutes(conn)
        return position, {**totals, "movements_per_minute": minutes}

    async def _page(self, *, conn_query: Any, projection: str) -> tuple[int, list[dict[str, Any]]]:
        async with self.engine.connect() as conn:
            position = await read_checkpoint(conn, projection)
            rows = (await conn.execute(conn_query)).mappings().all()
        return position, [dict(row) for row in rows]


async def _totals(conn: AsyncConnection) -> dict[str, Any]:
    row = (await conn.execute(select(TOTALS).where(TOTALS.c.id == TOTALS_ID))).mappings().first()
    values = dict(row) if row else {}

    def count(name: str) -> int:
        return int(values.get(name, 0))

    return {
        "accounts": count("accounts_opened"),
        "open_accounts": count("accounts_opened") - count("accounts_closed"),
        "total_balance": count("total_balance"),
        "deposits": count("deposits"),
        "withdrawals": count("withdrawals"),
        "transfers": {
            "requested": count("transfers_requested"),
            "completed": count("transfers_completed"),
            "failed": count("transfers_failed"),
        },
    }


async def _minutes(conn: AsyncConnection) -> list[dict[str, Any]]:
    """The newest minutes with movements, oldest first."""
    query = select(MINUTES).order_by(MINUTES.c.minute.desc()).limit(MINUTES_SHOWN)
    rows = (await conn.execute(query)).mappings().all()
    return [{"minute": r["minute"], "movements": int(r["movements"])} for r in reversed(rows)]
