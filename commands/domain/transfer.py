"""The transfer aggregate: the record of one movement between two accounts.

Life cycle (each arrow is one recorded step; the process manager drives them)::

    requested ──debit ok──> source_debited ──credit ok──> completed
        │                        │
        └─debit refused─> failed └─credit refused─> compensating ──debit given back──> failed

Every path ends in ``completed`` or ``failed``. Recording a step in a state that does
not allow it raises TransferStepOutOfOrder, so a step is never recorded twice.
"""

from __future__ import annotations

import enum
from typing import ClassVar

from pydantic import BaseModel, ConfigDict

from commands.domain.decider import Aggregate, Command, Decider
from commands.domain.values import Amount, Identifier
from commands.errors import (
    SameAccountTransfer,
    TransferAlreadyExists,
    TransferNotFound,
    TransferStepOutOfOrder,
)
from commands.events import (
    DomainEvent,
    TransferCompleted,
    TransferCreditRejected,
    TransferDebitCompensated,
    TransferFailed,
    TransferRequested,
    TransferSourceDebited,
    TransferTargetCredited,
    transfer_stream,
)

# --- commands -----------------------------------------------------------------------


class RequestTransfer(Command):
    command_type: ClassVar[str] = "RequestTransfer"
    transfer_id: Identifier
    from_account: Identifier
    to_account: Identifier
    amount: Amount


class RecordSourceDebited(Command):
    command_type: ClassVar[str] = "RecordSourceDebited"
    transfer_id: Identifier


class RecordDebitRejected(Command):
    command_type: ClassVar[str] = "RecordDebitRejected"
    transfer_id: Identifier
    reason: str


class RecordTargetCredited(Command):
    command_type: ClassVar[str] = "RecordTargetCredited"
    transfer_id: Identifier


class RecordCreditRejected(Command):
    command_type: ClassVar[str] = "RecordCreditRejected"
    transfer_id: Identifier
    reason: str


class RecordDebitCompensated(Command):
    command_type: ClassVar[str] = "RecordDebitCompensated"
    transfer_id: Identifier


TransferCommand = (
    RequestTransfer
    | RecordSourceDebited
    | RecordDebitRejected
    | RecordTargetCredited
    | RecordCreditRejected
    | RecordDebitCompensated
)


# --- state --------------------------------------------------------------------------


class TransferStatus(enum.StrEnum):
    NONE = "none"
    REQUESTED = "requested"
    SOURCE_DEBITED = "source_debited"
    COMPENSATING = "compensating"
    COMPLETED = "completed"
    FAILED = "failed"


TERMINAL = frozenset({TransferStatus.COMPLETED, TransferStatus.FAILED})


class TransferState(BaseModel):
    model_config = ConfigDict(frozen=True)

    status: TransferStatus = TransferStatus.NONE
    transfer_id: str = ""
    from_account: str = ""
    to_account: str = ""
    amount: int = 0
    reason: str | None = None

    @property
    def finished(self) -> bool:
        return self.status in TERMINAL


# --- decide -------------------------------------------------------------------------


def decide(state: TransferState, command: TransferCommand) -> list[DomainEvent]:
    """The events recording ``command`` on a transfer in ``state``."""
    if isinstance(command, RequestTransfer):
        return _request(state, command)
    if state.status is TransferStatus.NONE:
        raise TransferNotFound(f"transfer {command.transfer_id} does not exist")
    tid = command.transfer_id
    match command:
        case RecordSourceDebited():
            _require(state, TransferStatus.REQUESTED, command)
            return [TransferSourceDebited(transfer_id=tid)]
        case RecordDebitRejected(reason=reason):
            _require(state, TransferStatus.REQUESTED, command)
            return [TransferFailed(transfer_id=tid, reason=reason, compensated=False)]
        case RecordTargetCredited():
            _require(state, TransferStatus.SOURCE_DEBITED, command)
            return [TransferTargetCredited(transfer_id=tid), TransferCompleted(transfer_id=tid)]
        case RecordCreditRejected(reason=reason):
            _require(state, TransferStatus.SOURCE_DEBITED, command)
            return [TransferCreditRejected(transfer_id=tid, reason=reason)]
        case RecordDebitCompensated():
            _require(state, TransferStatus.COMPENSATING, command)
            reason = state.reason or "credit_rejected"
            return [
                TransferDebitCompensated(transfer_id=tid),
                TransferFailed(transfer_id=tid, reason=reason, compensated=True),
            ]
    raise TypeError(f"not a transfer command: {command!r}")


def _request(state: TransferState, command: RequestTransfer) -> list[DomainEvent]:
    if state.status is not TransferStatus.NONE:
        raise TransferAlreadyExists(f"transfer {command.transfer_id} already exists")
    if command.from_account == command.to_account:
        raise SameAccountTransfer("a transfer needs two different accounts")
    return [TransferRequested(**command.model_dump())]


def _require(state: TransferState, status: TransferStatus, command: Command) -> None:
    if state.status is not status:
        raise TransferStepOutOfOrder(
            f"{command.command_type} needs a {status} transfer; it is {state.status}"
        )


# --- evolve -------------------------------------------------------------------------


def evolve(state: TransferState, event: DomainEvent) -> TransferState:
    """The transfer after ``event``."""
    match event:
        case TransferRequested():
            return TransferState(status=TransferStatus.REQUESTED, **event.model_dump())
        case TransferSourceDebited():
            return _to(state, TransferStatus.SOURCE_DEBITED)
        case TransferCompleted():
            return _to(state, TransferStatus.COMPLETED)
        case TransferCreditRejected(reason=reason):
            return state.model_copy(
                update={"status": TransferStatus.COMPENSATING, "reason": reason}
            )
        case TransferFailed(reason=reason):
            return state.model_copy(update={"status": TransferStatus.FAILED, "reason": reason})
    return state


def _to(state: TransferState, status: TransferStatus) -> TransferState:
    return state.model_copy(update={"status": status})


decider: Decider[TransferCommand, DomainEvent, TransferState] = Decider(
    initial_state=TransferState(), decide=decide, evolve=evolve
)

aggregate: Aggregate[TransferCommand, TransferState] = Aggregate(
    name="transfer",
    decider=decider,
    stream_of=lambda command: transfer_stream(command.transfer_id),
    state_model=TransferState,
    state_version=1,
)
