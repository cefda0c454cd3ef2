"""The account aggregate: open, deposit, withdraw, close, and the transfer legs.

Rules: money moves only on an open account; the balance never goes below zero nor above
MAX_BALANCE; an account closes only when empty. A reversal of a transfer debit is the
exception that always succeeds (even on a closed account): it gives back money this
account gave to a transfer whose credit failed, so money is never lost. A closed account
holds money only that way (it closed empty, and takes no other money in), and that money
can be withdrawn: it would be out of everyone's reach otherwise.

A transfer's debit or credit that a rule refuses is not an error but an event,
``AccountTransferLegRefused``: the process manager appends a leg under an event id
derived from the transfer and the step, so whichever outcome is stored first is the
step's outcome for good. Two runs of a step (a retry after a crash, or two managers)
can never see it go both ways: one taking the money while the other records a refusal.
"""

from __future__ import annotations

import enum
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict

from commands.domain.decider import Aggregate, Command, Decider
from commands.domain.values import MAX_BALANCE, Amount, Identifier, Owner
from commands.errors import (
    AccountAlreadyExists,
    AccountClosed,
    AccountNotEmpty,
    AccountNotFound,
    BalanceLimitExceeded,
    DomainError,
    InsufficientFunds,
)
from commands.events import (
    AccountClosed as AccountClosedEvent,
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
    account_stream,
)

# --- commands -----------------------------------------------------------------------


class OpenAccount(Command):
    command_type: ClassVar[str] = "OpenAccount"
    account_id: Identifier
    owner: Owner


class Deposit(Command):
    command_type: ClassVar[str] = "Deposit"
    account_id: Identifier
    amount: Amount


class Withdraw(Command):
    command_type: ClassVar[str] = "Withdraw"
    account_id: Identifier
    amount: Amount


class CloseAccount(Command):
    command_type: ClassVar[str] = "CloseAccount"
    account_id: Identifier


class DebitForTransfer(Command):
    command_type: ClassVar[str] = "DebitForTransfer"
    account_id: Identifier
    transfer_id: Identifier
    amount: Amount


class CreditForTransfer(Command):
    command_type: ClassVar[str] = "CreditForTransfer"
    account_id: Identifier
    transfer_id: Identifier
    amount: Amount


class ReverseTransferDebit(Command):
    command_type: ClassVar[str] = "ReverseTransferDebit"
    account_id: Identifier
    transfer_id: Identifier
    amount: Amount


AccountCommand = (
    OpenAccount
    | Deposit
    | Withdraw
    | CloseAccount
    | DebitForTransfer
    | CreditForTransfer
    | ReverseTransferDebit
)


# --- state --------------------------------------------------------------------------


class AccountStatus(enum.StrEnum):
    NONE = "none"
    OPEN = "open"
    CLOSED = "closed"


class AccountState(BaseModel):
    model_config = ConfigDict(frozen=True)

    status: AccountStatus = AccountStatus.NONE
    account_id: str = ""
    owner: str = ""
    balance: int = 0


# --- decide -------------------------------------------------------------------------


def decide(state: AccountState, command: AccountCommand) -> list[DomainEvent]:
    """The events ``command`` causes on an account in ``state``; raises a DomainError
    when a rule refuses it, except for a transfer leg, whose refusal is an event."""
    match command:
        case OpenAccount(account_id=account_id, owner=owner):
            if state.status is not AccountStatus.NONE:
                raise AccountAlreadyExists(f"account {account_id} already exists")
            return [AccountOpened(account_id=account_id, owner=owner)]
        case Deposit(account_id=account_id, amount=amount):
            _require_room(_require_open(state, account_id), amount)
            return [MoneyDeposited(account_id=account_id, amount=amount)]
        case Withdraw(account_id=account_id, amount=amount):
            if not (state.status is AccountStatus.CLOSED and state.balance > 0):
                _require_open(state, account_id)
            _require_funds(state, amount)
            return [MoneyWithdrawn(account_id=account_id, amount=amount)]
        case CloseAccount(account_id=account_id):
            if _require_open(state, account_id).balance != 0:
                raise AccountNotEmpty(f"account {account_id} holds {state.balance}")
            return [AccountClosedEvent(account_id=account_id)]
        case _:
            return _decide_transfer_leg(state, command)


def _decide_transfer_leg(state: AccountState, command: AccountCommand) -> list[DomainEvent]:
    match command:
        case DebitForTransfer(account_id=account_id, amount=amount):
            try:
                _require_funds(_require_open(state, account_id), amount)
            except DomainError as refusal:
                return [_leg_refused(command, "debit", refusal)]
            return [AccountDebitedForTransfer(**command.model_dump())]
        case CreditForTransfer(account_id=account_id, amount=amount):
            try:
                _require_room(_require_open(state, account_id), amount)
            except DomainError as refusal:
                return [_leg_refused(command, "credit", refusal)]
            return [AccountCreditedForTransfer(**command.model_dump())]
        case ReverseTransferDebit(account_id=account_id):
            if state.status is AccountStatus.NONE:
                raise AccountNotFound(f"account {account_id} does not exist")
            return [AccountDebitReversed(**command.model_dump())]
    raise TypeError(f"not an account command: {command!r}")


def _leg_refused(
    command: DebitForTransfer | CreditForTransfer,
    leg: Literal["debit", "credit"],
    refusal: DomainError,
) -> AccountTransferLegRefused:
    return AccountTransferLegRefused(
        account_id=command.account_id,
        transfer_id=command.transfer_id,
        leg=leg,
        amount=command.amount,
        reason=refusal.code,
    )


def _require_open(state: AccountState, account_id: str) -> AccountState:
    if state.status is AccountStatus.NONE:
        raise AccountNotFound(f"account {account_id} does not exist")
    if state.status is AccountStatus.CLOSED:
        raise AccountClosed(f"account {account_id} is closed")
    return state


def _require_funds(state: AccountState, amount: int) -> None:
    if amount > state.balance:
        raise InsufficientFunds(f"balance {state.balance} is less than {amount}")


def _require_room(state: AccountState, amount: int) -> None:
    if state.balance + amount > MAX_BALANCE:
        raise BalanceLimitExceeded(f"balance would exceed {MAX_BALANCE}")


# --- evolve -------------------------------------------------------------------------


def evolve(state: AccountState, event: DomainEvent) -> AccountState:
    """The account after ``event``. A refused transfer leg, and events of other
    aggregates, leave it unchanged."""
    match event:
        case AccountOpened(account_id=account_id, owner=owner):
            return AccountState(status=AccountStatus.OPEN, account_id=account_id, owner=owner)
        case MoneyDeposited() | AccountCreditedForTransfer() | AccountDebitReversed():
            return state.model_copy(update={"balance": state.balance + event.amount})
        case MoneyWithdrawn() | AccountDebitedForTransfer():
            return state.model_copy(update={"balance": state.balance - event.amount})
        case AccountClosedEvent():
            return state.model_copy(update={"status": AccountStatus.CLOSED})
    return state


decider: Decider[AccountCommand, DomainEvent, AccountState] = Decider(
    initial_state=AccountState(), decide=decide, evolve=evolve
)

aggregate: Aggregate[AccountCommand, AccountState] = Aggregate(
    name="account",
    decider=decider,
    stream_of=lambda command: account_stream(command.account_id),
    state_model=AccountState,
    state_version=1,
)
