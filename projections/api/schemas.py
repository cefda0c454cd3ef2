"""Response bodies of the query API (for validation and the OpenAPI document)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class Account(BaseModel):
    account_id: str
    owner: str
    balance: int = Field(description="minor units (cents)")
    status: str = Field(description="open or closed")
    version: int = Field(description="stream version of the last event applied")
    position: int = Field(description="log position of the last event applied")
    opened_at: str
    updated_at: str


class AccountPage(BaseModel):
    items: list[Account]
    next_cursor: str | None = Field(description="pass as ?cursor= for the next page")


class Transaction(BaseModel):
    version: int
    position: int
    kind: str = Field(description="deposit, withdrawal, transfer_out, transfer_in, …")
    amount: int = Field(description="signed: credits positive, debits negative")
    balance_after: int
    transfer_id: str | None
    recorded_at: str


class TransactionPage(BaseModel):
    account_id: str
    items: list[Transaction] = Field(description="newest first")
    next_cursor: str | None


class TransferStep(BaseModel):
    step: str
    position: int
    at: str
    reason: str | None = None


class Transfer(BaseModel):
    transfer_id: str
    from_account: str
    to_account: str
    amount: int
    status: str = Field(description="requested, debited, credited, completed, compensating, failed")
    reason: str | None
    compensated: bool
    steps: list[TransferStep]
    version: int
    position: int
    requested_at: str
    updated_at: str


class TransferCounts(BaseModel):
    requested: int
    completed: int
    failed: int


class MinuteMovements(BaseModel):
    minute: str = Field(description="YYYY-MM-DDTHH:MM, UTC")
    movements: int


class Stats(BaseModel):
    accounts: int
    open_accounts: int
    total_balance: int
    deposits: int
    withdrawals: int
    transfers: TransferCounts
    movements_per_minute: list[MinuteMovements] = Field(description="newest 60, oldest first")


class LogEvent(BaseModel):
    event_id: str
    position: int
    stream_id: str
    version: int
    type: str
    data: dict[str, Any]
    metadata: dict[str, Any]
    recorded_at: str


class EventPage(BaseModel):
    events: list[LogEvent]
    next_after: int = Field(description="pass as ?after= for the next page")
    head_position: int
