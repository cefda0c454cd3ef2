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


def record_outcome(state: TransferState, step: Step, refused: str | None) -> TransferCommand:
    """The transfer command recording ``step``'s outcome: ``refused`` is the code of the
    account's refusal (``AccountTransferLegRefused``), None when the step happened.

    A reversal cannot be refused (see commands.domain.account): a refusal of one means
    the ledger's invariants are broken, and this raises rather than guess.
    """
    tid = state.transfer_id
    if step is Step.DEBIT:
        if refused is None:
            return RecordSourceDebited(transfer_id=tid)
        return RecordDebitRejected(transfer_id=tid, reason=refused)
    if step is Step.CREDIT:
        if refused is None:
            return RecordTargetCredited(transfer_id=tid)
        return RecordCreditRejected(transfer_id=tid, reason=refused)
    if refused is not None:
        raise ValueError(f"transfer {tid}: a reversal was refused ({refused})")
    return RecordDebitCompensated(transfer_id=tid)
