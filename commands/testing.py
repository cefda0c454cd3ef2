"""A test kit for deciders: ``given(events).when(command).then(events)``.

Works with any :class:`~commands.domain.decider.Decider` and any test runner (failures
are plain AssertionErrors with a readable diff; pytest hides the kit's own frames)::

    from commands.domain import account
    from commands.testing import DeciderSpec

    spec = DeciderSpec(account.decider)

    def test_a_deposit_is_recorded():
        opened = AccountOpened(account_id="a1", owner="Ada")
        spec.given(opened).when(Deposit(account_id="a1", amount=500)).then(
            MoneyDeposited(account_id="a1", amount=500)
        )

    def test_no_overdraft():
        spec.given(opened).when(Withdraw(account_id="a1", amount=1)).then_raises(
            InsufficientFunds
        )

``then`` also checks what a replay of the log would need: the new events evolve the
state without error, and events of the published contract survive a round trip through
their stored form (encode, then decode with upcasting). See docs/testing.md.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Generic, TypeVar

from commands.domain.decider import Decider
from commands.events import DomainEvent, decode, encode

C = TypeVar("C")
E = TypeVar("E")
S = TypeVar("S")
X = TypeVar("X", bound=BaseException)


def from_log(event_type: str, data: Mapping[str, Any], schema_version: int = 1) -> DomainEvent:
    """An event as the log holds it (type, JSON data, schema version), read through the
    contract's upcasters: use it to give a scenario events of older shapes."""
    return decode(event_type, data, schema_version)


class DeciderSpec(Generic[C, E, S]):
    """Scenarios for one decider: ``spec.given(...).when(...).then(...)``."""

    def __init__(self, decider: Decider[C, E, S]) -> None:
        self.decider = decider

    def given(self, *events: E | Iterable[E]) -> Given[C, E, S]:
        """The history before the command: events, or iterables of events, in order."""
        history: list[E] = []
        for item in events:
            if isinstance(item, (list, tuple)):
                history.extend(item)
            else:
                history.append(item)  # type: ignore[arg-type]
        return Given(self.decider, history)


class Given(Generic[C, E, S]):
    """A history; ``state`` is its fold, ``when`` runs a command against it."""

    def __init__(self, decider: Decider[C, E, S], history: Sequence[E]) -> None:
        self.decider = decider
        self.history = list(history)
        self.state: S = decider.fold(history)

    def when(self, command: C) -> When[C, E, S]:
        """Decide ``command`` on the history's state (errors are kept for ``then_*``)."""
        try:
            produced = list(self.decider.decide(self.state, command))
        except Exception as exc:
            return When(self, command, None, exc)
        return When(self, command, produced, None)


class When(Generic[C, E, S]):
    """The outcome of one command: new events, or the error the decider raised."""

    def __init__(
        self,
        given: Given[C, E, S],
        command: C,
        produced: list[E] | None,
        error: Exception | None,
    ) -> None:
        self.given = given
        self.command = command
        self.produced = produced
        self.error = error

    def then(self, *expected: E) -> S:
        """Assert the command produced exactly ``expected`` (none: it was a no-op).

        Returns the state after the new events, for further checks.
        """
        __tracebackhide__ = True
        produced = self._events()
        if produced != list(expected):
            raise AssertionError(_diff("events", list(expected), produced))
        for event in produced:
            _check_round_trip(event)
        return self.given.decider.fold(produced, self.given.state)

    def then_raises(self, error: type[X], match: str | None = None) -> X:
        """Assert the decider refused the command with ``error`` (a class; subclasses
        count), whose message matches the regular expression ``match`` if given."""
        __tracebackhide__ = True
        if self.error is None:
            raise AssertionError(
                f"{_name(self.command)} was expected to raise {error.__name__}, "
                f"but it produced:\n{_lines(self.produced or [])}"
            )
        if not isinstance(self.error, error):
            raise AssertionError(
                f"{_name(self.command)} raised {type(self.error).__name__}: {self.error}, "
                f"expected {error.__name__}"
            ) from self.error
        if match is not None and not re.search(match, str(self.error)):
            raise AssertionError(f"{str(self.error)!r} does not match {match!r}")
        return self.error

    def then_state(self, check: S | Callable[[S], bool]) -> S:
        """Assert the state after the new events equals ``check``, or satisfies it when
        ``check`` is a predicate. Returns that state."""
        __tracebackhide__ = True
        state = self.given.decider.fold(self._events(), self.given.state)
        ok = check(state) if callable(check) else state == check
        if not ok:
            raise AssertionError(f"unexpected state after {_name(self.command)}:\n  {state!r}")
        return state

    def _events(self) -> list[E]:
        __tracebackhide__ = True
        if self.error is not None:
            raise AssertionError(
                f"{_name(self.command)} raised {type(self.error).__name__}: {self.error}"
            ) from self.error
        return list(self.produced or [])


def _check_round_trip(event: object) -> None:
    __tracebackhide__ = True
    if not isinstance(event, DomainEvent):
        return
    event_type, data, metadata = encode(event)
    read_back = decode(event_type, data, metadata["schema_version"])
    if read_back != event:
        raise AssertionError(f"{event!r} reads back from the log as {read_back!r}")


def _diff(what: str, expected: list[Any], produced: list[Any]) -> str:
    diff = difflib.ndiff(_lines(expected).splitlines(), _lines(produced).splitlines())
    return f"unexpected {what} (- expected, + produced):\n" + "\n".join(
        line.rstrip("\n") for line in diff
    )


def _lines(events: Sequence[Any]) -> str:
    return "\n".join(f"  {event!r}" for event in events) or "  (no events)"


def _name(command: object) -> str:
    return type(command).__name__
