"""The transfer aggregate's life cycle and the process manager's pure policy."""

from __future__ import annotations

import pytest

from commands.domain import transfer
from commands.domain.account import CreditForTransfer, DebitForTransfer, ReverseTransferDebit
from commands.domain.transfer import (
    RecordCreditRejected,
    RecordDebitCompensated,
    RecordDebitRejected,
    RecordSourceDebited,
    RecordTargetCredited,
    RequestTransfer,
    TransferState,
    TransferStatus,
)
from commands.domain.transfer_policy import Step, next_step, record_outcome, step_command
from commands.errors import (
    SameAccountTransfer,
    TransferAlreadyExists,
    TransferNotFound,
    TransferStepOutOfOrder,
)
from commands.events import (
    TransferCompleted,
    TransferCreditRejected,
    TransferDebitCompensated,
    TransferFailed,
    TransferRequested,
    TransferSourceDebited,
    TransferTargetCredited,
)
from commands.testing import DeciderSpec

spec = DeciderSpec(transfer.decider)
T = "tr-1"
requested = TransferRequested(transfer_id=T, from_account="a", to_account="b", amount=70)
debited = [requested, TransferSourceDebited(transfer_id=T)]
compensating = [*debited, TransferCreditRejected(transfer_id=T, reason="account_closed")]


def test_request_a_transfer() -> None:
    command = RequestTransfer(transfer_id=T, from_account="a", to_account="b", amount=70)
    state = spec.given().when(command).then(requested)
    assert state.status is TransferStatus.REQUESTED
    spec.given(requested).when(command).then_raises(TransferAlreadyExists)


def test_a_transfer_needs_two_accounts() -> None:
    command = RequestTransfer(transfer_id=T, from_account="a", to_account="a", amount=1)
    spec.given().when(command).then_raises(SameAccountTransfer)


def test_the_happy_path_completes() -> None:
    spec.given(requested).when(RecordSourceDebited(transfer_id=T)).then(
        TransferSourceDebited(transfer_id=T)
    )
    state = (
        spec.given(debited)
        .when(RecordTargetCredited(transfer_id=T))
        .then(TransferTargetCredited(transfer_id=T), TransferCompleted(transfer_id=T))
    )
    assert state.finished
    assert next_step(state) is None


def test_a_refused_debit_fails_without_compensation() -> None:
    state = (
        spec.given(requested)
        .when(RecordDebitRejected(transfer_id=T, reason="insufficient_funds"))
        .then(TransferFailed(transfer_id=T, reason="insufficient_funds", compensated=False))
    )
    assert state.status is TransferStatus.FAILED


def test_a_refused_credit_compensates_then_fails() -> None:
    spec.given(debited).when(RecordCreditRejected(transfer_id=T, reason="account_closed")).then(
        TransferCreditRejected(transfer_id=T, reason="account_closed")
    )
    state = (
        spec.given(compensating)
        .when(RecordDebitCompensated(transfer_id=T))
        .then(
            TransferDebitCompensated(transfer_id=T),
            TransferFailed(transfer_id=T, reason="account_closed", compensated=True),
        )
    )
    assert state.finished
    assert state.reason == "account_closed"


@pytest.mark.parametrize(
    ("history", "command"),
    [
        (debited, RecordSourceDebited(transfer_id=T)),
        (requested, RecordTargetCredited(transfer_id=T)),
        (requested, RecordDebitCompensated(transfer_id=T)),
        (compensating, RecordTargetCredited(transfer_id=T)),
        (
            [*debited, TransferCompleted(transfer_id=T)],
            RecordCreditRejected(transfer_id=T, reason="x"),
        ),
    ],
)
def test_steps_are_recorded_once_and_in_order(history: list, command: object) -> None:
    spec.given(history).when(command).then_raises(TransferStepOutOfOrder)


def test_steps_of_an_unknown_transfer() -> None:
    spec.given().when(RecordSourceDebited(transfer_id=T)).then_raises(TransferNotFound)


def test_the_policy_drives_each_state_to_its_next_step() -> None:
    state = spec.given(requested).state
    assert next_step(state) is Step.DEBIT
    assert step_command(state, Step.DEBIT) == DebitForTransfer(
        account_id="a", transfer_id=T, amount=70
    )
    assert record_outcome(state, Step.DEBIT, None) == RecordSourceDebited(transfer_id=T)
    assert record_outcome(state, Step.DEBIT, "insufficient_funds") == RecordDebitRejected(
        transfer_id=T, reason="insufficient_funds"
    )
    state = spec.given(debited).state
    assert next_step(state) is Step.CREDIT
    assert step_command(state, Step.CREDIT) == CreditForTransfer(
        account_id="b", transfer_id=T, amount=70
    )
    state = spec.given(compensating).state
    assert next_step(state) is Step.REVERSE
    assert step_command(state, Step.REVERSE) == ReverseTransferDebit(
        account_id="a", transfer_id=T, amount=70
    )
    with pytest.raises(ValueError, match="reversal was refused"):
        record_outcome(state, Step.REVERSE, "account_not_found")
    assert next_step(TransferState()) is None
