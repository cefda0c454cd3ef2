"""The PostgreSQL backend (asyncpg), the production event store.

An append is one statement in an implicit transaction, shared with the appends that
run concurrently in this process (group commit, see ``pg_append``): it reads each
stream's version, checks the expectation and inserts the events. Everything unusual (a
version race, an idempotent retry, a reused event id) is sorted out after the statement
was rejected, so the common case pays for nothing else. Readers of the global
order apply the MVCC fence described in docs/eventstore.md.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Collection, Iterable, Sequence
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
from pydantic_core import from_json

from eventstore.errors import (
    ConcurrencyError,
    EventIdConflict,
    EventStoreError,
    InvalidVersion,
    PositionsBehind,
    SchemaNotReady,
    StoreUnavailable,
)
from eventstore.limits import (
    EncodedEvent,
    Limits,
    check_expected_version,
    check_non_negative,
    check_stream_id,
    encode_events,
)
from eventstore.metrics import StoreMetrics
from eventstore.migrations import Migration, migrate_postgres
from eventstore.model import ANY, AppendResult, ExpectedVersion, NewEvent, RecordedEvent
from eventstore.pg_append import RUN_ALONE, AppendRequest, GroupCommitter, Rows, statement
from eventstore.signal import AppendSignal
from eventstore.store import EventStore, check_read_all, stream_read_start

_COLUMNS = "position, event_id, stream_id, version, type, data::text, metadata::text, recorded_at"

# Everything below the oldest running transaction id has ended: the read fence.
# pg_current_snapshot() is the statement's own snapshot, so the fence and the rows the
# statement sees come from the same instant.
_FENCE = "(pg_snapshot_xmin(pg_current_snapshot())::text::bigint << 16)"

# Whether the transactions that start from now get positions above every stored one:
# xmax is the first transaction id not handed out yet, and ids only grow.
_AHEAD_OF_LOG = """SELECT (pg_snapshot_xmax(pg_current_snapshot())::text::bigint << 16)
                          > coalesce((SELECT max(position) FROM chronicle_events), 0)"""

_CATEGORY = "split_part(stream_id, '-', 1)"

log = logging.getLogger(__name__)

_READ_ALL = {
    (False, False): "",
    (True, False): f" AND {_CATEGORY} = ANY($3::text[])",
    (False, True): " AND type = ANY($3::text[])",
    (True, True): f" AND {_CATEGORY} = ANY($3::text[]) AND type = ANY($4::text[])",
}

# A concurrent append to the same stream with ANY is retried this many times before the
# conflict is reported; each retry re-reads the version, so it only loses to a writer
# that keeps winning the same race.
_ANY_RETRIES = 10

_UNAVAILABLE = (
    OSError,
    asyncio.TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.OperatorInterventionError,
    asyncpg.InsufficientResourcesError,
    asyncpg.InterfaceError,
    # A server that turned read-only (a primary demoted during a failover, a pooler
    # still pointing at it) and a transaction the server rolled back (deadlock,
    # serialization failure) wrote nothing: the same request succeeds later.
    asyncpg.ReadOnlySQLTransactionError,
    asyncpg.TransactionRollbackError,
)


def translate(exc: Exception) -> Exception:
    """The event store error for a driver error (see errors.py); others unchanged."""
    if isinstance(exc, (asyncpg.UndefinedTableError, asyncpg.UndefinedFunctionError)):
        return SchemaNotReady(f"event store schema missing, run `chronicle migrate`: {exc}")
    if isinstance(exc, _UNAVAILABLE):
        return StoreUnavailable(f"PostgreSQL unavailable: {exc!r}")
    if isinstance(exc, asyncpg.PostgresError):
        return EventStoreError(f"PostgreSQL error: {exc}")
    return exc


@asynccontextmanager
async def translate_errors() -> AsyncIterator[None]:
    """Turn driver errors raised inside the block into the event store's tree."""
    try:
        yield
    except EventStoreError:
        raise
    except Exception as exc:
        translated = translate(exc)
        if translated is exc:
            raise
        raise translated from exc


async def _keep_session(connection: asyncpg.Connection) -> None:
    """Skip asyncpg's reset round trip when a connection returns to the pool: the store
    never hands connections out and its statements leave no session state behind (no
    SET, LISTEN, advisory lock or open cursor), so there is nothing to reset."""


class PostgresEventStore(EventStore):
    """The event store on PostgreSQL. Make one with :meth:`connect`."""

    def __init__(
        self, pool: asyncpg.Pool, limits: Limits, dsn: str, append_statements: int = 4
    ) -> None:
        self._pool = pool
        self._dsn = dsn
        self.limits = limits
        self._signal = AppendSignal()
        self._committer = GroupCommitter(self._execute_group, max_inflight=append_statements)
        self.metrics = StoreMetrics("postgresql")
        self._ahead_of_log = False

    @classmethod
    async def connect(
        cls,
        dsn: str,
        *,
        limits: Limits | None = None,
        pool_size: int = 20,
        command_timeout: float = 30.0,
        append_statements: int = 4,
    ) -> PostgresEventStore:
        """Create the connection pool. Connections are opened lazily, so a database that
        is down now makes calls raise StoreUnavailable until it is back.

        ``append_statements`` bounds the append statements in flight at once (group
        commit, see pg_append): fewer means larger groups and less CPU per append, more
        means more parallel commits.
        """
        pool = asyncpg.create_pool(
            dsn,
            min_size=0,
            max_size=pool_size,
            command_timeout=command_timeout,
            timeout=10,
            reset=_keep_session,
        )
        await pool
        return cls(pool, limits or Limits(), dsn, append_statements)

    async def append(
        self,
        stream_id: str,
        events: Sequence[NewEvent],
        expected_version: ExpectedVersion = ANY,
    ) -> AppendResult:
        return await self.metrics.observe(
            len(events), lambda: self._append_events(stream_id, events, expected_version)
        )

    async def _append_events(
        self, stream_id: str, events: Sequence[NewEvent], expected_version: ExpectedVersion
    ) -> AppendResult:
        check_stream_id(stream_id, self.limits)
        request = AppendRequest(
            stream_id, check_expected_version(expected_version), encode_events(events, self.limits)
        )
        if not self._ahead_of_log:
            await self._check_ahead_of_log()
        rows = await self._grouped(request)
        for attempt in range(_ANY_RETRIES + 1):
            race = False
            if rows is RUN_ALONE:
                rows, race = await self._alone(request)
            if rows:
                self._signal.notify()
                return _appended(request, rows)
            replay = await self._stored(stream_id, request.events)
            if replay is not None:
                return replay
            # A version race lost with ANY is simply tried again on the fresh version.
            if not (race and request.expected is None and attempt < _ANY_RETRIES):
                await self._raise_rejection(stream_id, request.expected)
            rows = RUN_ALONE
        raise AssertionError("unreachable")  # pragma: no cover

    async def _check_ahead_of_log(self) -> None:
        """Refuse to append when new events would get positions at or below the log's
        head (see PositionsBehind): readers would skip them, silently. Checked until it
        holds once; transaction ids only grow, so it holds from then on."""
        async with translate_errors():
            ahead = await self._pool.fetchval(_AHEAD_OF_LOG)
        if not ahead:
            log.error("the log is ahead of this cluster's transaction ids; appends refused")
            raise PositionsBehind(
                "the event log holds positions beyond this PostgreSQL cluster's next"
                " transaction ids (restored into another cluster?): move them past the"
                " log's with pg_resetwal --next-transaction-id before writing"
            )
        self._ahead_of_log = True

    async def _grouped(self, request: AppendRequest) -> Rows | None:
        try:
            return await self._committer.submit(request)
        except Exception as exc:
            raise translate(exc) from exc

    async def _alone(self, request: AppendRequest) -> tuple[Rows, bool]:
        """Run one append by itself; (rows, whether it lost a version race)."""
        try:
            sql, args = statement([request])
            return await self._pool.fetch(sql, *args), False
        except asyncpg.UniqueViolationError as exc:
            return [], exc.constraint_name == "chronicle_events_stream_version"
        except Exception as exc:
            raise translate(exc) from exc

    async def _execute_group(self, requests: Sequence[AppendRequest]) -> Rows:
        sql, args = statement(requests)
        return await self._pool.fetch(sql, *args)

    async def _stored(self, stream_id: str, encoded: Sequence[EncodedEvent]) -> AppendResult | None:
        """The recorded events when this batch is stored already (an idempotent retry);
        None when none of its ids is stored. EventIdConflict when some are, with other
        content, or not all of them are."""
        ids = [item.event.event_id for item in encoded]
        async with translate_errors():
            rows = await self._pool.fetch(
                f"SELECT {_COLUMNS} FROM chronicle_events WHERE event_id = ANY($1::uuid[])"
                " ORDER BY position",
                ids,
            )
        if not rows:
            return None
        stored = {event.event_id: event for event in map(_to_event, rows)}
        for item in encoded:
            found = stored.get(item.event.event_id)
            if found is None or found.stream_id != stream_id or found.type != item.event.type:
                raise EventIdConflict(item.event.event_id, "another stream, type or batch")
            if found.data != json.loads(item.data_json):
                raise EventIdConflict(item.event.event_id, "other data")
        events = tuple(stored[item.event.event_id] for item in encoded)
        return AppendResult(stream_id, events[-1].version, events[-1].position, events, True)

    async def _raise_rejection(self, stream_id: str, expected: int | None) -> None:
        current = await self.stream_version(stream_id)
        raise ConcurrencyError(stream_id, "any" if expected is None else expected, current)

    async def read_stream(
        self,
        stream_id: str,
        from_version: int | None = None,
        *,
        backwards: bool = False,
        limit: int | None = None,
    ) -> list[RecordedEvent]:
        start = stream_read_start(stream_id, from_version, backwards, limit, self.limits)
        if backwards:
            sql = f"""SELECT {_COLUMNS} FROM chronicle_events
                      WHERE stream_id = $1 AND version <= $2 ORDER BY version DESC LIMIT $3"""
        else:
            sql = f"""SELECT {_COLUMNS} FROM chronicle_events
                      WHERE stream_id = $1 AND version >= $2 ORDER BY version LIMIT $3"""
        async with translate_errors():
            rows = await self._pool.fetch(sql, stream_id, start, limit)
        return [_to_event(row) for row in rows]

    async def read_all(
        self,
        after_position: int = 0,
        limit: int = 1000,
        *,
        categories: Collection[str] | None = None,
        types: Collection[str] | None = None,
    ) -> list[RecordedEvent]:
        check_read_all(after_position, limit)
        filters = _READ_ALL[(categories is not None, types is not None)]
        sql = f"""SELECT {_COLUMNS} FROM chronicle_events
                  WHERE position > $1 AND position < {_FENCE}{filters}
                  ORDER BY position LIMIT $2"""
        args: list[Any] = [after_position, limit]
        args += [list(f) for f in (categories, types) if f is not None]
        async with translate_errors():
            rows = await self._pool.fetch(sql, *args)
        return [_to_event(row) for row in rows]

    async def head_position(self) -> int:
        async with translate_errors():
            value = await self._pool.fetchval(
                f"SELECT coalesce(max(position), 0) FROM chronicle_events WHERE position < {_FENCE}"
            )
        return int(value)

    async def stream_version(self, stream_id: str) -> int:
        check_stream_id(stream_id, self.limits)
        async with translate_errors():
            value = await self._pool.fetchval(
                "SELECT coalesce(max(version), 0) FROM chronicle_events WHERE stream_id = $1",
                stream_id,
            )
        return int(value)

    async def load_checkpoint(self, name: str) -> int:
        async with translate_errors():
            value = await self._pool.fetchval(
                "SELECT position FROM chronicle_checkpoints WHERE name = $1", name
            )
        return int(value or 0)

    async def save_checkpoint(self, name: str, position: int) -> None:
        check_non_negative("position", position)
        async with translate_errors():
            stored = await self._pool.fetchval(
                """INSERT INTO chronicle_checkpoints AS c (name, position) VALUES ($1, $2)
                   ON CONFLICT (name) DO UPDATE SET position = excluded.position,
                       updated_at = now()
                   WHERE c.position <= excluded.position
                   RETURNING position""",
                name,
                position,
            )
        if stored is None:
            raise InvalidVersion(f"checkpoint {name!r} is beyond {position}; it never goes back")

    async def ping(self) -> None:
        async with translate_errors():
            await self._pool.fetchval("SELECT 1 FROM chronicle_events LIMIT 1")

    async def oldest_write_age(self) -> float:
        # Every transaction holding an xid, in any database of the server, holds the
        # fence; other roles' rows are visible only with pg_monitor (docs/operations.md).
        async with translate_errors():
            age = await self._pool.fetchval(_OLDEST_WRITE)
        return float(age or 0.0)

    async def migrate(self, migrations: Iterable[Migration]) -> list[Migration]:
        return await migrate_postgres(self._dsn, migrations)

    async def wait_for_append(self, max_wait: float) -> None:
        await self._signal.wait(max_wait)

    async def close(self) -> None:
        await self._committer.close()
        await self._pool.close()


def _to_event(row: asyncpg.Record) -> RecordedEvent:
    # pydantic-core's JSON parser builds the same objects as json.loads in a fifth of
    # the time; a replay decodes two documents for every event of the log.
    return RecordedEvent(
        event_id=row["event_id"],
        stream_id=row["stream_id"],
        version=row["version"],
        position=row["position"],
        type=row["type"],
        data=from_json(row["data"]),
        metadata=from_json(row["metadata"]),
        recorded_at=row["recorded_at"],
    )


_OLDEST_WRITE = """SELECT extract(epoch FROM max(now() - xact_start))::float8
    FROM pg_stat_activity WHERE backend_xid IS NOT NULL"""


def _appended(request: AppendRequest, rows: Rows) -> AppendResult:
    recorded = tuple(
        RecordedEvent(
            event_id=item.event.event_id,
            stream_id=request.stream_id,
            version=row["version"],
            position=row["position"],
            type=item.event.type,
            data=dict(item.event.data),
            metadata=dict(item.event.metadata),
            recorded_at=row["recorded_at"],
        )
        for item, row in zip(request.events, rows, strict=True)
    )
    return AppendResult(request.stream_id, recorded[-1].version, recorded[-1].position, recorded)
