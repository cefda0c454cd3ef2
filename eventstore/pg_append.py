"""Appending on PostgreSQL: the append statement and group commit.

Concurrent appends from one process are merged into one statement, and so one
transaction and one WAL flush (group commit): while a statement is in flight, new
appends queue; when a slot frees, everything queued goes in the next statement. A
lone append goes out at once, so nothing waits for company. Each append in a group
still succeeds or fails on its own: a failed expectation leaves only that append out
of the insert. When a group hits a unique violation (a concurrent writer elsewhere on
the same stream, or an event id stored already), every append of the group is run
again alone, where the store sorts out races and idempotent retries.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

import asyncpg

from eventstore.limits import EncodedEvent

# The read order (the one place it is made). A position is
#     (top-level transaction id << 16) + index of the event within its transaction.
# Readers only read positions below (snapshot xmin << 16) -- see postgres._FENCE. Every
# transaction whose id is below the snapshot's xmin has ended, so no event can ever
# appear below that fence again, while events above it wait for a later read. Positions
# therefore come out strictly increasing and none is skipped, without any lock shared
# by writers. A transaction that took its id early and commits late is waited for: a
# long-open transaction delays readers, it never makes one skip or reorder.
#
# One row per append in $1 (stream ids) and $2 (expected versions, NULL = any); one row
# per event in $3..$8 (the index of its append in $1, its index within the append, id,
# type, data, metadata), events of an append consecutive and in order. $9 is how many
# positions this transaction used
# already (0 in autocommit, which is how the store appends; an explicit transaction that
# appends twice passes the running count, and a wrong count fails on the primary key
# rather than reusing a position). An append whose expectation fails inserts no row.
APPEND_SQL = """
WITH xact AS (
    SELECT (pg_current_xact_id()::text::bigint << 16) + $9::int AS base
), accepted AS (
    SELECT r.stream_id, r.idx, r.current
      FROM (SELECT r.*, coalesce((SELECT max(e.version) FROM chronicle_events e
                                   WHERE e.stream_id = r.stream_id), 0) AS current
              FROM unnest($1::text[], $2::bigint[]) WITH ORDINALITY AS r(stream_id, expected, idx)
           ) r
     WHERE r.expected IS NULL OR r.expected = r.current
)
INSERT INTO chronicle_events (position, event_id, stream_id, version, type, data, metadata)
SELECT xact.base + n.ord, n.id, a.stream_id, a.current + n.k, n.type,
       n.data::jsonb, n.metadata::jsonb
  FROM xact, accepted a
  JOIN unnest($3::int[], $4::int[], $5::uuid[], $6::text[], $7::text[], $8::text[])
       WITH ORDINALITY AS n(req, k, id, type, data, metadata, ord) ON n.req = a.idx
RETURNING stream_id, version, position, recorded_at
"""

# The same for a single append, without the join ($1 stream, $2 expected, $3..$6 ids,
# types, data, metadata, $7 positions used already): most groups hold one append.
SINGLE_APPEND_SQL = """
WITH current AS (
    SELECT coalesce(max(version), 0) AS version FROM chronicle_events WHERE stream_id = $1
), xact AS (
    SELECT (pg_current_xact_id()::text::bigint << 16) + $7::int AS base
)
INSERT INTO chronicle_events (position, event_id, stream_id, version, type, data, metadata)
SELECT xact.base + n.ord, n.id, $1, current.version + n.ord, n.type,
       n.data::jsonb, n.metadata::jsonb
  FROM current, xact,
       unnest($3::uuid[], $4::text[], $5::text[], $6::text[])
           WITH ORDINALITY AS n(id, type, data, metadata, ord)
 WHERE $2::bigint IS NULL OR $2::bigint = current.version
RETURNING stream_id, version, position, recorded_at
"""


@dataclass(frozen=True, slots=True)
class AppendRequest:
    """One validated append: its stream, exact expected version (None = any), events."""

    stream_id: str
    expected: int | None
    events: Sequence[EncodedEvent]


def statement(requests: Sequence[AppendRequest], offset: int = 0) -> tuple[str, tuple[object, ...]]:
    """The SQL and parameters that append ``requests`` (streams must be distinct)."""
    if len(requests) == 1:
        (request,) = requests
        events = request.events
        return SINGLE_APPEND_SQL, (
            request.stream_id,
            request.expected,
            [item.event.event_id for item in events],
            [item.event.type for item in events],
            [item.data_json for item in events],
            [item.metadata_json for item in events],
            offset,
        )
    return APPEND_SQL, _group_args(requests, offset)


def _group_args(requests: Sequence[AppendRequest], offset: int) -> tuple[object, ...]:
    owners: list[int] = []
    within: list[int] = []
    for index, request in enumerate(requests, start=1):
        owners += [index] * len(request.events)
        within += range(1, len(request.events) + 1)
    events = [item for request in requests for item in request.events]
    return (
        [r.stream_id for r in requests],
        [r.expected for r in requests],
        owners,
        within,
        [item.event.event_id for item in events],
        [item.event.type for item in events],
        [item.data_json for item in events],
        [item.metadata_json for item in events],
        offset,
    )


RUN_ALONE = None
"""What a grouped append gets when its group hit a unique violation: run it alone."""

Rows = list[asyncpg.Record]
Execute = Callable[[Sequence[AppendRequest]], Awaitable[Rows]]


@dataclass
class _Pending:
    request: AppendRequest
    future: asyncio.Future[Rows | None] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class GroupCommitter:
    """Merges concurrent appends into shared statements (see the module docstring).

    ``execute`` runs APPEND_SQL for a group and returns its rows. At most
    ``max_inflight`` groups run at once, each with at most ``max_events`` events and
    never two appends to one stream (nor a stream that an in-flight group writes), so
    appends to one stream keep their order.
    """

    def __init__(self, execute: Execute, *, max_inflight: int = 4, max_events: int = 5000):
        self._execute = execute
        self._max_inflight = max_inflight
        self._max_events = max_events
        self._queue: deque[_Pending] = deque()
        self._busy: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    async def submit(self, request: AppendRequest) -> Rows | None:
        """The inserted rows of ``request`` (empty when its expectation failed), or
        RUN_ALONE when its group hit a unique violation. Other errors propagate."""
        pending = _Pending(request)
        self._queue.append(pending)
        self._start_flushes()
        return await pending.future

    def _start_flushes(self) -> None:
        while self._queue and len(self._tasks) < self._max_inflight:
            group = self._take()
            if not group:
                return
            task = asyncio.create_task(self._flush(group))
            self._tasks.add(task)
            task.add_done_callback(self._flushed)

    def _take(self) -> list[_Pending]:
        group: list[_Pending] = []
        waiting: deque[_Pending] = deque()
        held: set[str] = set()
        count = 0
        while self._queue:
            pending = self._queue.popleft()
            size = len(pending.request.events)
            stream = pending.request.stream_id
            if (
                stream in self._busy
                or stream in held
                or (group and count + size > self._max_events)
            ):
                # A later append to a stream left waiting here waits too: it must not
                # be written before the one queued ahead of it.
                held.add(stream)
                waiting.append(pending)
                continue
            self._busy.add(stream)
            group.append(pending)
            count += size
        self._queue = waiting
        return group

    async def _flush(self, group: list[_Pending]) -> None:
        try:
            rows = await self._execute([pending.request for pending in group])
        except asyncpg.UniqueViolationError:
            for pending in group:
                _settle(pending.future, RUN_ALONE)
        except asyncio.CancelledError:
            for pending in group:
                pending.future.cancel()
            raise
        except Exception as exc:
            for pending in group:
                _fail(pending.future, exc)
        else:
            by_stream: dict[str, Rows] = {pending.request.stream_id: [] for pending in group}
            for row in rows:
                by_stream[row["stream_id"]].append(row)
            for pending in group:
                found = sorted(by_stream[pending.request.stream_id], key=lambda r: r["version"])
                _settle(pending.future, found)
        finally:
            for pending in group:
                self._busy.discard(pending.request.stream_id)

    def _flushed(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._start_flushes()

    async def close(self) -> None:
        """Wait for the groups in flight (their callers are waiting for them)."""
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)


def _settle(future: asyncio.Future[Rows | None], value: Rows | None) -> None:
    if not future.done():
        future.set_result(value)


def _fail(future: asyncio.Future[Rows | None], exc: Exception) -> None:
    if not future.done():
        future.set_exception(exc)
