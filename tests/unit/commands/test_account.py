"""Every rule of the account aggregate, through the test kit."""

from __future__ import annotations

from typing import Literal

import pytest
from pydantic import ValidationError

from commands.domain import account
from commands.domain.account import (
    AccountState,
    AccountStatus,
    CloseAccount,
    CreditForTransfer,
    DebitForTransfer,
    Deposit,
    OpenAccount,
    ReverseTransferDebit,
    Withdraw,
)
from commands.domain.values import MAX_AMOUNT, MAX_BALANCE
from commands.errors import (
    AccountAlreadyExists,
    AccountClosed,
    AccountNotEmpty,
    AccountNotFound,
    BalanceLimitExceeded,
    InsufficientFunds,
)
from commands.events import (
    AccountClosed as Closed,
)
from commands.events import (
    AccountCreditedForTransfer,
    AccountDebitedForTransfer,
    AccountDebitReversed,
    AccountOpened,
    AccountTransferLegRefused,
    DomainEvent,
    MoneyDeposited,
    MoneyWithdrawn,
)
from commands.testing import DeciderSpec

spec = DeciderSpec(account.decider)
A = "acc-1"
opened = AccountOpened(account_id=A, owner="Ada")
funded = [opened, MoneyDeposited(account_id=A, amount=1_000)]
closed = [opened, Closed(account_id=A)]


def test_open_a_new_account() -> None:
    state = spec.given().when(OpenAccount(account_id=A, owner="  Ada  ")).then(opened)
    assert state == AccountState(status=AccountStatus.OPEN, account_id=A, owner="Ada")


def test_an_account_opens_once() -> None:
    spec.given(opened).when(OpenAccount(account_id=A, owner="Bob")).then_raises(
        AccountAlreadyExists
    )


def test_deposit_adds_to_the_balance() -> None:
    spec.given(funded).when(Deposit(account_id=A, amount=250)).then(
        MoneyDeposited(account_id=A, amount=250)
    )
    spec.given(funded).when(Deposit(account_id=A, amount=250)).then_state(
        lambda state: state.balance == 1_250
    )


def test_withdraw_within_the_balance() -> None:
    state = (
        spec.given(funded)
        .when(Withdraw(account_id=A, amount=1_000))
        .then(MoneyWithdrawn(account_id=A, amount=1_000))
    )
    assert state.balance == 0


def test_the_balance_never_goes_below_zero() -> None:
    spec.given(funded).when(Withdraw(account_id=A, amount=1_001)).then_raises(
        InsufficientFunds, match="less than 1001"
    )
    spec.given(funded).when(DebitForTransfer(account_id=A, transfer_id="t1", amount=1_001)).then(
        refused("debit", 1_001, "insufficient_funds")
    )


def refused(leg: Literal["debit", "credit"], amount: int, reason: str) -> DomainEvent:
    """A transfer leg refused: recorded (the step's one outcome), the balance untouched."""
    return AccountTransferLegRefused(
        account_id=A, transfer_id="t1", leg=leg, amount=amount, reason=reason
    )


@pytest.mark.parametrize(
    "command",
    [
        Deposit(account_id=A, amount=1),
        Withdraw(account_id=A, amount=1),
        CloseAccount(account_id=A),
        ReverseTransferDebit(account_id=A, transfer_id="t1", amount=1),
    ],
)
def test_an_unknown_account_is_not_found(command: account.AccountCommand) -> None:
    spec.given().when(command).then_raises(AccountNotFound)


@pytest.mark.parametrize(
    ("given", "reason"),
    [([], "account_not_found"), ([opened, Closed(account_id=A)], "account_closed")],
)
def test_transfer_legs_on_an_unknown_or_closed_account_are_refused(
    given: list[DomainEvent], reason: str
) -> None:
    debit = DebitForTransfer(account_id=A, transfer_id="t1", amount=1)
    credit = CreditForTransfer(account_id=A, transfer_id="t1", amount=1)
    spec.given(given).when(debit).then(refused("debit", 1, reason))
    state = spec.given(given).when(credit).then(refused("credit", 1, reason))
    assert state.balance == 0


@pytest.mark.parametrize(
    "command",
    [
        Deposit(account_id=A, amount=1),
        Withdraw(account_id=A, amount=1),
        CloseAccount(account_id=A),
    ],
)
def test_a_closed_account_rejects_money_movements(command: account.AccountCommand) -> None:
    spec.given(closed).when(command).then_raises(AccountClosed)


def test_a_reversal_is_accepted_even_on_a_closed_account() -> None:
    history = [
        opened,
        MoneyDeposited(account_id=A, amount=5),
        AccountDebitedForTransfer(account_id=A, transfer_id="t1", amount=5),
        Closed(account_id=A),
    ]
    reversal = ReverseTransferDebit(account_id=A, transfer_id="t1", amount=5)
    state = (
        spec.given(history)
        .when(reversal)
        .then(AccountDebitReversed(account_id=A, transfer_id="t1", amount=5))
    )
    assert state.balance == 5


def test_money_given_back_to_a_closed_account_can_be_withdrawn() -> None:
    # The whole balance went to a transfer, the account closed, and the credit bounced.
    history = [
        opened,
        MoneyDeposited(account_id=A, amount=5),
        AccountDebitedForTransfer(account_id=A, transfer_id="t1", amount=5),
        Closed(account_id=A),
        AccountDebitReversed(account_id=A, transfer_id="t1", amount=5),
    ]
    spec.given(history).when(Withdraw(account_id=A, amount=6)).then_raises(InsufficientFunds)
    spec.given(history).when(Deposit(account_id=A, amount=1)).then_raises(AccountClosed)
    state = (
        spec.given(history)
        .when(Withdraw(account_id=A, amount=5))
        .then(MoneyWithdrawn(account_id=A, amount=5))
    )
    assert (state.status, state.balance) == (AccountStatus.CLOSED, 0)
    emptied = [*history, MoneyWithdrawn(account_id=A, amount=5)]
    spec.given(emptied).when(Withdraw(account_id=A, amount=1)).then_raises(AccountClosed)


def test_close_only_an_empty_account() -> None:
    spec.given(funded).when(CloseAccount(account_id=A)).then_raises(AccountNotEmpty)
    state = spec.given(opened).when(CloseAccount(account_id=A)).then(Closed(account_id=A))
    assert state.status is AccountStatus.CLOSED


def test_the_balance_has_an_upper_bound() -> None:
    rich = [
        opened,
        *[MoneyDeposited(account_id=A, amount=MAX_AMOUNT)] * (MAX_BALANCE // MAX_AMOUNT),
    ]
    spec.given(rich).when(Deposit(account_id=A, amount=1)).then_raises(BalanceLimitExceeded)
    spec.given(rich).when(CreditForTransfer(account_id=A, transfer_id="t1", amount=1)).then(
        refused("credit", 1, "balance_limit_exceeded")
    )


def test_transfer_legs_move_money() -> None:
    spec.given(funded).when(DebitForTransfer(account_id=A, transfer_id="t1", amount=400)).then(
        AccountDebitedForTransfer(account_id=A, transfer_id="t1", amount=400)
    )
    state = (
        spec.given(funded)
        .when(CreditForTransfer(account_id=A, transfer_id="t1", amount=400))
        .then(AccountCreditedForTransfer(account_id=A, transfer_id="t1", amount=400))
    )
    assert state.balance == 1_400


@pytest.mark.parametrize("amount", [0, -1, MAX_AMOUNT + 1, "5", 5.0, True, None])
def test_amounts_are_positive_bounded_integers(amount: object) -> None:
    with pytest.raises(ValidationError):
        Deposit(account_id=A, amount=amount)  # type: ignore[arg-type]


@pytest.mark.parametrize("account_id", ["", "-x", "a b", "x" * 65, "é", "a/b"])
def test_account_ids_are_bounded_tokens(account_id: str) -> None:
    with pytest.raises(ValidationError):
        OpenAccount(account_id=account_id, owner="Ada")


@pytest.mark.parametrize("owner", ["", "   ", "x" * 201, "bad\x00name", "line\nbreak"])
def test_owners_are_printable_and_bounded(owner: str) -> None:
    with pytest.raises(ValidationError):
        OpenAccount(account_id=A, owner=owner)
