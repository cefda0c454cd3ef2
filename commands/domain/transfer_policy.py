"""What the transfer process manager does next: pure functions, no I/O.

From a transfer's state, :func:`next_step` names the account step still to do (debit the
source, credit the target, or give the debit back); :func:`step_command` is that step as
an account command, and :func:`record_outcome` is the transfer command recording how the
step went. A finished transfer has no next step.
"""

from __future__ import annotations

import enum

from commands.domain.account import (
    AccountCommand,
    CreditForTransfer,
    DebitForTransfer,
    ReverseTransferDebit,
)
from commands.domain.transfer import (
    RecordCreditRejected,
    RecordDebitCompensated,
    RecordDebitRejected,
    RecordSourceDebited,
    RecordTargetCredited,
    TransferCommand,
    TransferState,
    TransferStatus,
)
from commands.errors import DomainError


class Step(enum.StrEnum):
    DEBIT = "debit"
    CREDIT = "credit"
    REVERSE = "reverse"


_NEXT = {
    TransferStatus.REQUESTED: Step.DEBIT,
    TransferStatus.SOURCE_DEBITED: Step.CREDIT,
    TransferStatus.COMPENSATING: Step.REVERSE,
}


def next_step(state: TransferState) -> Step | None:
    """The account step the transfer waits for; None once it is finished (or unknown)."""
    return _NEXT.get(state.status)


def step_command(state: TransferState, step: Step) -> AccountCommand:
    """The account command performing ``step`` of the transfer."""
    tid, amount = state.transfer_id, state.amount
    if step is Step.DEBIT:
        return DebitForTransfer(account_id=state.from_account, transfer_id=tid, amount=amount)
    if step is Step.CREDIT:
        return CreditForTransfer(account_id=state.to_account, transfer_id=tid, amount=amount)
    return ReverseTransferDebit(account_id=state.from_account, transfer_id=tid, amount=amount)


def record_outcome(
    state: TransferState, step: Step, refusal: DomainError | None
) -> TransferCommand:
    """The transfer command recording ``step``'s outcome (``refusal`` None = it happened).

    A reversal cannot be refused (see commands.domain.account); if it is, the ledger's
    invariants are broken and this raises the refusal rather than guess.
    """
    tid = state.transfer_id
    if step is Step.DEBIT:
        if refusal is None:
            return RecordSourceDebited(transfer_id=tid)
        return RecordDebitRejected(transfer_id=tid, reason=refusal.code)
    if step is Step.CREDIT:
        if refusal is None:
            return RecordTargetCredited(transfer_id=tid)
        return RecordCreditRejected(transfer_id=tid, reason=refusal.code)
    if refusal is not None:
        raise refusal
    return RecordDebitCompensated(transfer_id=tid)
