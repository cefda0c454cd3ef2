"""The test kit reports failures clearly, and works for any decider."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from commands.domain import account
from commands.domain.account import Deposit, Withdraw
from commands.domain.decider import Decider
from commands.errors import InsufficientFunds
from commands.events import AccountOpened, MoneyDeposited
from commands.testing import DeciderSpec

spec = DeciderSpec(account.decider)
opened = AccountOpened(account_id="a", owner="Ada")


def test_then_shows_a_diff_of_events() -> None:
    with pytest.raises(AssertionError) as caught:
        spec.given(opened).when(Deposit(account_id="a", amount=5)).then(
            MoneyDeposited(account_id="a", amount=6)
        )
    message = str(caught.value)
    assert "- expected, + produced" in message
    assert "amount=6" in message
    assert "amount=5" in message


def test_then_reports_an_unexpected_error() -> None:
    with pytest.raises(AssertionError, match="Withdraw raised InsufficientFunds"):
        spec.given(opened).when(Withdraw(account_id="a", amount=5)).then()


def test_then_raises_reports_success_and_wrong_errors() -> None:
    with pytest.raises(AssertionError, match="was expected to raise InsufficientFunds"):
        spec.given(opened).when(Deposit(account_id="a", amount=5)).then_raises(InsufficientFunds)
    with pytest.raises(AssertionError, match="expected KeyError"):
        spec.given(opened).when(Withdraw(account_id="a", amount=5)).then_raises(KeyError)
    with pytest.raises(AssertionError, match="does not match"):
        spec.given(opened).when(Withdraw(account_id="a", amount=5)).then_raises(
            InsufficientFunds, match="nope"
        )


def test_then_state_checks_values_and_predicates() -> None:
    after = spec.given(opened).when(Deposit(account_id="a", amount=5))
    after.then_state(lambda state: state.balance == 5)
    with pytest.raises(AssertionError, match="unexpected state"):
        after.then_state(lambda state: state.balance == 6)


@dataclass(frozen=True)
class Add:
    n: int


@dataclass(frozen=True)
class Added:
    n: int


def _decide(total: int, command: Add) -> list[Added]:
    if total + command.n > 10:
        raise OverflowError("too much")
    return [Added(command.n)]


def test_any_decider_works() -> None:
    counter: Decider[Add, Added, int] = Decider(0, _decide, lambda total, e: total + e.n)
    kit = DeciderSpec(counter)
    assert kit.given(Added(4), [Added(5)]).when(Add(1)).then(Added(1)) == 10
    kit.given(Added(10)).when(Add(1)).then_raises(OverflowError, match="too much")
