"""The decider shape every aggregate follows, and the write side's binding of it.

A decider is three pure parts: ``initial_state``, ``decide(state, command) -> events``
(raising a DomainError when a rule refuses the command) and
``evolve(state, event) -> state``. The current state of a stream is the fold of
``evolve`` over its events, starting from ``initial_state``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import ClassVar, Generic, TypeVar

from pydantic import BaseModel, ConfigDict

from commands.events import DomainEvent

C = TypeVar("C")
E = TypeVar("E")
S = TypeVar("S")
CommandT = TypeVar("CommandT", bound="Command")
St = TypeVar("St", bound=BaseModel)


class Command(BaseModel):
    """Base of every command: immutable, strictly typed (``"5"`` is not an amount),
    with a stable type name and a schema version."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    command_type: ClassVar[str]
    schema_version: ClassVar[int] = 1


@dataclass(frozen=True, slots=True)
class Decider(Generic[C, E, S]):
    """``decide`` and ``evolve`` over a state that starts as ``initial_state``."""

    initial_state: S
    decide: Callable[[S, C], Sequence[E]]
    evolve: Callable[[S, E], S]

    def fold(self, events: Iterable[E], state: S | None = None) -> S:
        """The state after ``events``, from ``state`` (default: the initial state)."""
        current = self.initial_state if state is None else state
        for event in events:
            current = self.evolve(current, event)
        return current


@dataclass(frozen=True, slots=True)
class Aggregate(Generic[CommandT, St]):
    """A decider bound to streams: which stream a command targets, and how its state is
    snapshotted (``state_version`` changes whenever the state model or ``evolve`` does,
    which invalidates older snapshots)."""

    name: str
    decider: Decider[CommandT, DomainEvent, St]
    stream_of: Callable[[CommandT], str]
    state_model: type[St]
    state_version: int
