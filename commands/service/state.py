"""Loading an aggregate's current state at a cost that does not grow with its stream.

Two layers (docs/commands.md, "State: cache and snapshots"):

* An in-process LRU cache of ``(version, state)`` per stream. The handler decides on the
  cached state and appends with that version as the exact expectation, so the store
  itself checks the cache: a stale entry costs one ConcurrencyError and a catch-up read
  of the newer events, never a wrong decision. A warm command reads nothing.
* Snapshots in the database every ``snapshot_every`` versions, so a cold load (a new
  process, an evicted entry) reads the latest snapshot plus at most that many events.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ValidationError

from commands.domain.decider import Aggregate
from commands.events import DomainEvent, decode_stored
from commands.service.metrics import WriteSideMetrics
from commands.storage.base import CommandStorage, Snapshot
from eventstore import EventStore, EventStoreError

log = logging.getLogger(__name__)

S = TypeVar("S", bound=BaseModel)

_PAGE = 1000


@dataclass(frozen=True, slots=True)
class Loaded(Generic[S]):
    """A stream's state as of ``version`` (0: the stream has no events)."""

    state: S
    version: int


class StateLoader:
    """Current states of streams, from cache, snapshot and log (in that order)."""

    def __init__(
        self,
        store: EventStore,
        storage: CommandStorage | None,
        metrics: WriteSideMetrics,
        *,
        capacity: int = 100_000,
        snapshot_every: int = 100,
    ) -> None:
        self._store = store
        self._storage = storage
        self._metrics = metrics
        self._capacity = capacity
        self._snapshot_every = snapshot_every
        self._cache: OrderedDict[str, Loaded[Any]] = OrderedDict()

    def peek_version(self, stream_id: str) -> int:
        """A version the stream has certainly reached (the cached one, or 0)."""
        entry = self._cache.get(stream_id)
        return 0 if entry is None else entry.version

    async def load(self, aggregate: Aggregate[Any, S], stream_id: str, *, fresh: bool) -> Loaded[S]:
        """The stream's state: the cached one as is, or (``fresh``) caught up with the log.

        Empty streams are not cached, so unknown ids cannot crowd out real ones.
        """
        cached: Loaded[S] | None = self._cache.get(stream_id)
        if cached is not None and not fresh:
            self._cache.move_to_end(stream_id)
            self._metrics.loaded("hit")
            return cached
        if cached is not None:
            base, source = cached, "catch_up"
        else:
            base, source = await self._from_snapshot(aggregate, stream_id)
        loaded = await self._catch_up(aggregate, stream_id, base)
        self._metrics.loaded(source)
        if loaded.version > 0:
            self._put(stream_id, loaded)
        if loaded.version - base.version >= self._snapshot_every:
            await self._save_snapshot(aggregate, stream_id, loaded)
        return loaded

    async def advance(
        self,
        aggregate: Aggregate[Any, S],
        stream_id: str,
        loaded: Loaded[S],
        events: Sequence[DomainEvent],
        version: int,
    ) -> Loaded[S]:
        """Cache the state after ``events`` were appended at ``version``; snapshot it
        when the stream crossed a multiple of ``snapshot_every``."""
        state = aggregate.decider.fold(events, loaded.state)
        after = Loaded(state, version)
        self._put(stream_id, after)
        if version // self._snapshot_every > loaded.version // self._snapshot_every:
            await self._save_snapshot(aggregate, stream_id, after)
        return after

    def forget(self, stream_id: str) -> None:
        """Drop the cached state (e.g. after a replayed append the cache cannot place)."""
        self._cache.pop(stream_id, None)

    def _put(self, stream_id: str, loaded: Loaded[Any]) -> None:
        current = self._cache.get(stream_id)
        if current is not None and current.version > loaded.version:
            return  # a concurrent load finished late: never step the cache back
        self._cache[stream_id] = loaded
        self._cache.move_to_end(stream_id)
        while len(self._cache) > self._capacity:
            self._cache.popitem(last=False)

    async def _catch_up(
        self, aggregate: Aggregate[Any, S], stream_id: str, base: Loaded[S]
    ) -> Loaded[S]:
        state, version = base.state, base.version
        evolve = aggregate.decider.evolve
        while True:
            page = await self._store.read_stream(stream_id, version + 1, limit=_PAGE)
            for recorded in page:
                state = evolve(state, decode_stored(recorded))
                version = recorded.version
            if len(page) < _PAGE:
                return Loaded(state, version)

    async def _from_snapshot(
        self, aggregate: Aggregate[Any, S], stream_id: str
    ) -> tuple[Loaded[S], str]:
        initial = Loaded(aggregate.decider.initial_state, 0)
        if self._storage is None:
            return initial, "replay"
        snapshot = await self._storage.load_snapshot(stream_id)
        if snapshot is None or snapshot.state_version != aggregate.state_version:
            return initial, "replay"
        try:
            state = aggregate.state_model.model_validate_json(snapshot.state)
        except ValidationError:
            log.warning("ignoring unreadable snapshot of %s", stream_id)
            return initial, "replay"
        return Loaded(state, snapshot.version), "snapshot"

    async def _save_snapshot(
        self, aggregate: Aggregate[Any, S], stream_id: str, loaded: Loaded[S]
    ) -> None:
        if self._storage is None or loaded.version == 0:
            return
        snapshot = Snapshot(
            stream_id, loaded.version, aggregate.state_version, loaded.state.model_dump_json()
        )
        try:
            await self._storage.save_snapshot(snapshot)
        except EventStoreError as exc:
            # A snapshot only speeds up later loads; the command itself succeeded.
            log.warning("snapshot of %s at %d not saved: %s", stream_id, loaded.version, exc)
