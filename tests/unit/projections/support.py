"""Shared by the projection tests: a bank simulation driven by the write side's own
deciders (so every event sequence is one the system can produce), a reference fold of
the log written independently of the projections, and a snapshot of the read models in
the same shape, to compare the two."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from commands.domain import account, transfer
from commands.errors import DomainError
from commands.events import (
    EVENT_TYPES,
    AccountTransferLegRefused,
    DomainEvent,
    account_stream,
    decode_stored,
    transfer_stream,
)
from eventstore import RecordedEvent
from projections.bank import bank_projections

Op = tuple[str, int, int, int]
"""(kind, account index, other account index, amount) of one step of a simulation."""

KINDS = ("open", "deposit", "withdraw", "close", "transfer")


@dataclass
class Bank:
    """Runs commands through the deciders; collects the events as (stream, event)."""

    accounts: dict[str, account.AccountState] = field(default_factory=dict)
    transfers: dict[str, transfer.TransferState] = field(default_factory=dict)
    events: list[tuple[str, DomainEvent]] = field(default_factory=list)
    transfer_count: int = 0

    def _account(self, command: Any) -> list[DomainEvent]:
        state = self.accounts.get(command.account_id, account.decider.initial_state)
        new = account.decider.decide(state, command)
        self.accounts[command.account_id] = account.decider.fold(new, state)
        self.events.extend((account_stream(command.account_id), e) for e in new)
        return new

    def _transfer(self, command: Any) -> None:
        state = self.transfers.get(command.transfer_id, transfer.decider.initial_state)
        new = transfer.decider.decide(state, command)
        self.transfers[command.transfer_id] = transfer.decider.fold(new, state)
        self.events.extend((transfer_stream(command.transfer_id), e) for e in new)

    def run(self, op: Op) -> None:
        kind, a, b, amount = op
        source, target = f"acc{a}", f"acc{b}"
        try:
            if kind == "open":
                self._account(account.OpenAccount(account_id=source, owner=f"Owner {a}"))
            elif kind == "deposit":
                self._account(account.Deposit(account_id=source, amount=amount))
            elif kind == "withdraw":
                self._account(account.Withdraw(account_id=source, amount=amount))
            elif kind == "close":
                self._account(account.CloseAccount(account_id=source))
            elif source != target:
                self.move(source, target, amount)
        except DomainError:
            pass  # refused: nothing written, as on the real write side

    def move(self, source: str, target: str, amount: int) -> None:
        """A transfer, run to its end the way the process manager runs it."""
        self.transfer_count += 1
        tid = f"t{self.transfer_count}"
        self._transfer(
            transfer.RequestTransfer(
                transfer_id=tid, from_account=source, to_account=target, amount=amount
            )
        )
        leg = {"transfer_id": tid, "amount": amount}
        [debit] = self._account(account.DebitForTransfer(account_id=source, **leg))
        if isinstance(debit, AccountTransferLegRefused):
            self._transfer(transfer.RecordDebitRejected(transfer_id=tid, reason=debit.reason))
            return
        self._transfer(transfer.RecordSourceDebited(transfer_id=tid))
        [credit] = self._account(account.CreditForTransfer(account_id=target, **leg))
        if isinstance(credit, AccountTransferLegRefused):
            self._transfer(transfer.RecordCreditRejected(transfer_id=tid, reason=credit.reason))
            self._account(account.ReverseTransferDebit(account_id=source, **leg))
            self._transfer(transfer.RecordDebitCompensated(transfer_id=tid))
            return
        self._transfer(transfer.RecordTargetCredited(transfer_id=tid))


def simulate(ops: Iterable[Op]) -> list[tuple[str, DomainEvent]]:
    bank = Bank()
    for op in ops:
        bank.run(op)
    return bank.events


# --- the reference fold -------------------------------------------------------------

_SIGN = {
    "MoneyDeposited": 1,
    "MoneyWithdrawn": -1,
    "AccountDebitedForTransfer": -1,
    "AccountCreditedForTransfer": 1,
    "AccountDebitReversed": 1,
}
_TRANSFER_STATUS = {
    "TransferRequested": "requested",
    "TransferSourceDebited": "debited",
    "TransferTargetCredited": "credited",
    "TransferCompleted": "completed",
    "TransferCreditRejected": "compensating",
    "TransferFailed": "failed",
}


def fold(records: Sequence[RecordedEvent]) -> dict[str, Any]:
    """What every read model must hold after ``records`` (position order)."""
    accounts: dict[str, dict[str, Any]] = {}
    lines: dict[tuple[str, int], tuple[int, int]] = {}
    transfers: dict[str, dict[str, Any]] = {}
    totals: dict[str, int] = defaultdict(int)
    minutes: dict[str, int] = defaultdict(int)
    for record in records:
        data = decode_stored(record).model_dump()
        kind = record.type
        if record.category == "account":
            _fold_account(accounts, lines, record, data)
        else:
            _fold_transfer(transfers, record, data)
        if kind in _SIGN:
            totals["total_balance"] += _SIGN[kind] * data["amount"]
            minute = record.recorded_at.astimezone(UTC).isoformat()[:16]
            minutes[minute] += 1
        totals[kind] += 1
    return {
        "accounts": accounts,
        "transactions": lines,
        "transfers": transfers,
        "totals": {
            "accounts_opened": totals["AccountOpened"],
            "accounts_closed": totals["AccountClosed"],
            "total_balance": totals["total_balance"],
            "deposits": totals["MoneyDeposited"],
            "withdrawals": totals["MoneyWithdrawn"],
            "transfers_requested": totals["TransferRequested"],
            "transfers_completed": totals["TransferCompleted"],
            "transfers_failed": totals["TransferFailed"],
        },
        "minutes": dict(minutes),
    }


def _fold_account(
    accounts: dict[str, dict[str, Any]],
    lines: dict[tuple[str, int], tuple[int, int]],
    record: RecordedEvent,
    data: dict[str, Any],
) -> None:
    account_id = data["account_id"]
    if record.type == "AccountOpened":
        accounts[account_id] = {"owner": data["owner"], "balance": 0, "status": "open"}
    entry = accounts.get(account_id)
    if entry is None:  # a transfer leg refused to an account never opened: no row
        return
    entry["version"] = record.version
    if record.type == "AccountClosed":
        entry["status"] = "closed"
    if record.type in _SIGN:
        amount = _SIGN[record.type] * data["amount"]
        entry["balance"] += amount
        lines[(account_id, record.version)] = (amount, entry["balance"])


def _fold_transfer(
    transfers: dict[str, dict[str, Any]], record: RecordedEvent, data: dict[str, Any]
) -> None:
    tid = data["transfer_id"]
    if record.type == "TransferRequested":
        transfers[tid] = {"amount": data["amount"], "steps": [], "status": "requested"}
    entry = transfers[tid]
    entry["steps"].append(record.type)
    entry["status"] = _TRANSFER_STATUS.get(record.type, entry["status"])
    entry["version"] = record.version


async def snapshot(engine: AsyncEngine, suffix: str = "") -> dict[str, Any]:
    """The read models' contents in the shape :func:`fold` returns."""
    tables = {}
    for projection in bank_projections():
        tables.update(projection.tables(suffix))
    async with engine.connect() as conn:

        async def rows(name: str) -> list[Any]:
            return list((await conn.execute(select(tables[name]))).mappings())

        accounts = {
            r["account_id"]: {
                "owner": r["owner"],
                "balance": r["balance"],
                "status": r["status"],
                "version": r["version"],
            }
            for r in await rows("accounts")
        }
        lines = {
            (r["account_id"], r["version"]): (r["amount"], r["balance_after"])
            for r in await rows("transactions")
        }
        transfers = {
            r["transfer_id"]: {
                "amount": r["amount"],
                "steps": [_STEP_TYPES[s["step"]] for s in json.loads(r["steps"])],
                "status": r["status"],
                "version": r["version"],
            }
            for r in await rows("transfers")
        }
        totals_rows = await rows("totals")
        minutes = {r["minute"]: r["movements"] for r in await rows("minutes")}
    totals = (
        {k: v for k, v in dict(totals_rows[0]).items() if k != "id"}
        if totals_rows
        else fold([])["totals"]
    )
    return {
        "accounts": accounts,
        "transactions": lines,
        "transfers": transfers,
        "totals": totals,
        "minutes": minutes,
    }


_STEP_TYPES = {
    "requested": "TransferRequested",
    "source_debited": "TransferSourceDebited",
    "target_credited": "TransferTargetCredited",
    "completed": "TransferCompleted",
    "credit_rejected": "TransferCreditRejected",
    "debit_compensated": "TransferDebitCompensated",
    "failed": "TransferFailed",
}
assert set(_TRANSFER_STATUS) | {"TransferDebitCompensated"} <= set(EVENT_TYPES)
