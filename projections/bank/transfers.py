"""Transfers: one row per transfer with its status and every step it went through."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from sqlalchemy.ext.asyncio import AsyncConnection

from commands import events as ev
from projections.projection import Applied, Projection
from projections.rows import Row, RowSet
from projections.tables import TableFactory, Tables, transfers

STEPS: dict[type[ev.DomainEvent], tuple[str, str | None]] = {
    ev.TransferRequested: ("requested", "requested"),
    ev.TransferSourceDebited: ("source_debited", "debited"),
    ev.TransferTargetCredited: ("target_credited", "credited"),
    ev.TransferCompleted: ("completed", "completed"),
    ev.TransferCreditRejected: ("credit_rejected", "compensating"),
    ev.TransferDebitCompensated: ("debit_compensated", None),
    ev.TransferFailed: ("failed", "failed"),
}
"""Each transfer event: the step it records, and the status it moves to (None: same)."""


def evolve_transfer(row: Row | None, item: Applied) -> Row | None:
    """The transfer row after ``item``; None for a step of a transfer never requested."""
    event = item.event
    step, status = STEPS[type(event)]
    if isinstance(event, ev.TransferRequested):
        row = {
            "transfer_id": event.transfer_id,
            "from_account": event.from_account,
            "to_account": event.to_account,
            "amount": event.amount,
            "reason": None,
            "compensated": False,
            "steps": "[]",
            "requested_at": item.at,
        }
    if row is None:
        return None
    record: dict[str, Any] = {"step": step, "position": item.position, "at": item.at}
    updated = {**row, "version": item.record.version, "position": item.position}
    reason = getattr(event, "reason", None)
    if isinstance(reason, str):
        record["reason"] = updated["reason"] = reason
    if isinstance(event, ev.TransferFailed):
        updated["compensated"] = event.compensated
    if isinstance(event, ev.TransferDebitCompensated):
        updated["compensated"] = True
    updated["steps"] = json.dumps([*json.loads(row["steps"]), record], separators=(",", ":"))
    updated["status"] = status or row["status"]
    updated["updated_at"] = item.at
    return updated


class TransfersProjection(Projection):
    name: ClassVar[str] = "transfers"
    handles: ClassVar[frozenset[str]] = frozenset(cls.event_type for cls in ev.TRANSFER_EVENTS)
    table_factories: ClassVar[Mapping[str, TableFactory]] = {"transfers": transfers}

    async def apply(self, conn: AsyncConnection, tables: Tables, batch: Sequence[Applied]) -> None:
        rows = RowSet(tables["transfers"])
        await rows.load(conn, {(_transfer_id(item),) for item in batch})
        for item in batch:
            updated = evolve_transfer(rows.get((_transfer_id(item),)), item)
            if updated is not None:
                rows.put(updated)
        await rows.store(conn)


def _transfer_id(item: Applied) -> str:
    return str(getattr(item.event, "transfer_id", ""))
