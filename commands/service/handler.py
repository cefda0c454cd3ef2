"""The command handler: load the stream's state, decide, append with the expected version.

Without an expected version from the caller, a concurrency conflict (another process
appended first) is retried a bounded number of times, with jittered back-off, each
time on the caught-up state; then ConcurrencyConflict. With one (``If-Match``), a
mismatch is PreconditionFailed at once: the caller asked for exactly that version.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from typing import Any, TypeVar
from uuid import UUID

from pydantic import BaseModel

from commands.domain.decider import Aggregate, Command
from commands.errors import ConcurrencyConflict, DomainError, PreconditionFailed
from commands.events import DomainEvent, encode
from commands.service.context import CommandContext, EventIds, Outcome, random_ids
from commands.service.locks import StreamLocks
from commands.service.metrics import WriteSideMetrics
from commands.service.state import Loaded, StateLoader
from eventstore import ConcurrencyError, EventStore, NewEvent

C = TypeVar("C", bound=Command)
S = TypeVar("S", bound=BaseModel)


class _Retry(Exception):
    """This attempt lost its append to a concurrent writer; try again on fresh state."""


class CommandHandler:
    """Runs commands of any aggregate against one event store."""

    def __init__(
        self,
        store: EventStore,
        states: StateLoader,
        metrics: WriteSideMetrics,
        *,
        max_attempts: int = 5,
        back_off: float = 0.005,
    ) -> None:
        self.store = store
        self.states = states
        self._metrics = metrics
        self._locks = StreamLocks()
        self._max_attempts = max_attempts
        self._back_off = back_off
        self._jitter = random.Random()  # noqa: S311 -- back-off jitter, not a secret
        self.listeners: list[Callable[[Outcome], None]] = []
        """Called after each append that wrote events (e.g. to wake a process manager)."""

    async def execute(
        self,
        aggregate: Aggregate[C, S],
        command: C,
        context: CommandContext,
        *,
        expected_version: int | None = None,
        event_ids: EventIds = random_ids,
    ) -> Outcome:
        """Decide ``command`` on its stream's current state and append the events.

        Raises the decider's DomainError, PreconditionFailed (``expected_version`` is not
        the stream's), ConcurrencyConflict (retries exhausted), or the event store's
        errors (StoreUnavailable…). An empty decision writes nothing and returns the
        stream's version with no events.
        """
        started = time.perf_counter()
        outcome = "error"
        try:
            result = await self._execute(aggregate, command, context, expected_version, event_ids)
            outcome = "replayed" if result.replayed else "ok"
            return result
        except DomainError as exc:
            outcome = exc.code
            raise
        finally:
            elapsed = time.perf_counter() - started
            self._metrics.command_done(command.command_type, outcome, elapsed)

    async def _execute(
        self,
        aggregate: Aggregate[C, S],
        command: C,
        context: CommandContext,
        expected: int | None,
        event_ids: EventIds,
    ) -> Outcome:
        stream_id = aggregate.stream_of(command)
        async with self._locks.hold(stream_id):
            fresh = expected is not None
            for attempt in range(1, self._max_attempts + 1):
                try:
                    return await self._attempt(
                        aggregate, stream_id, command, context, expected, event_ids, fresh
                    )
                except _Retry:
                    fresh = True
                    if attempt < self._max_attempts:
                        await asyncio.sleep(self._delay(attempt))
        raise ConcurrencyConflict(stream_id, self._max_attempts)

    async def _attempt(
        self,
        aggregate: Aggregate[C, S],
        stream_id: str,
        command: C,
        context: CommandContext,
        expected: int | None,
        event_ids: EventIds,
        fresh: bool,
    ) -> Outcome:
        loaded = await self.states.load(aggregate, stream_id, fresh=fresh)
        if expected is not None and loaded.version != expected:
            raise PreconditionFailed(stream_id, expected, loaded.version)
        try:
            events = list(aggregate.decider.decide(loaded.state, command))
        except DomainError:
            if fresh:
                raise
            # The cache may predate another process's events: confirm on fresh state,
            # in this attempt (a stale cache is no conflict, and costs none of them).
            loaded = await self.states.load(aggregate, stream_id, fresh=True)
            events = list(aggregate.decider.decide(loaded.state, command))
        if not events:
            return Outcome(stream_id, loaded.version, 0, ())
        return await self._append(
            aggregate, stream_id, loaded, events, context, expected, event_ids
        )

    async def _append(
        self,
        aggregate: Aggregate[C, S],
        stream_id: str,
        loaded: Loaded[S],
        events: list[DomainEvent],
        context: CommandContext,
        expected: int | None,
        event_ids: EventIds,
    ) -> Outcome:
        metadata = context.metadata()
        new = [_new_event(event, metadata, event_ids(i)) for i, event in enumerate(events)]
        try:
            result = await self.store.append(stream_id, new, expected_version=loaded.version)
        except ConcurrencyError as exc:
            self._metrics.conflicts.inc()
            if expected is not None:
                raise PreconditionFailed(stream_id, expected, exc.current) from exc
            raise _Retry from exc
        if result.replayed:
            # Appended before (same ids): the cached state may not include it yet.
            self.states.forget(stream_id)
            return Outcome.of(list(result.events), replayed=True)
        await self.states.advance(aggregate, stream_id, loaded, events, result.version)
        outcome = Outcome.of(list(result.events), replayed=False)
        for listener in self.listeners:
            listener(outcome)
        return outcome

    def _delay(self, attempt: int) -> float:
        # Full jitter: spreads competing writers apart so the next attempt rarely collides.
        return self._jitter.uniform(0, self._back_off * 2**attempt)


def _new_event(event: DomainEvent, metadata: dict[str, Any], event_id: UUID) -> NewEvent:
    event_type, data, schema = encode(event)
    return NewEvent(event_type, data, {**metadata, **schema}, event_id)
