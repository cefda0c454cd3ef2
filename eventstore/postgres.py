"""The PostgreSQL backend (asyncpg), the production event store.

One append is one round trip: the ``chronicle_append`` function (see
``sql/pg_0001_events.sql``) checks idempotency and the expected version and inserts the
batch in the caller's implicit transaction. Readers of the global order apply the MVCC
fence described in docs/eventstore.md.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Collection, Iterable, Sequence
from contextlib import asynccontextmanager
from typing import Any
from uuid import UUID

import asyncpg

from eventstore.errors import (
    BatchTooLarge,
    ConcurrencyError,
    EventIdConflict,
    EventStoreError,
    InvalidVersion,
    SchemaNotReady,
    StoreUnavailable,
)
from eventstore.limits import (
    Limits,
    check_expected_version,
    check_non_negative,
    check_stream_id,
    encode_events,
)
from eventstore.migrations import Migration, migrate_postgres
from eventstore.model import ANY, AppendResult, ExpectedVersion, NewEvent, RecordedEvent
from eventstore.signal import AppendSignal
from eventstore.store import EventStore

_COLUMNS = "position, event_id, stream_id, version, type, data::text, metadata::text, recorded_at"

# Everything below the oldest running transaction id has ended: the read fence.
# pg_current_snapshot() is the statement's own snapshot, so the fence and the rows the
# statement sees come from the same instant.
_FENCE = "(pg_snapshot_xmin(pg_current_snapshot())::text::bigint << 16)"

_READ_ALL = {
    (False, False): "",
    (True, False): " AND category = ANY($3::text[])",
    (False, True): " AND type = ANY($3::text[])",
    (True, True): " AND category = ANY($3::text[]) AND type = ANY($4::text[])",
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
)


@asynccontextmanager
async def translate_errors() -> AsyncIterator[None]:
    """Turn driver errors into the event store's tree (see errors.py)."""
    try:
        yield
    except EventStoreError:
        raise
    except (asyncpg.UndefinedTableError, asyncpg.UndefinedFunctionError) as exc:
        raise SchemaNotReady(f"event store schema missing, run `chronicle migrate`: {exc}") from exc
    except _UNAVAILABLE as exc:
        raise StoreUnavailable(f"PostgreSQL unavailable: {exc!r}") from exc
    except asyncpg.UniqueViolationError:
        raise  # the caller knows what a duplicate means for its statement
    except asyncpg.PostgresError as exc:
        if exc.sqlstate.startswith("CH"):
            raise  # raised by chronicle_append; append() translates it
        raise EventStoreError(f"PostgreSQL error: {exc}") from exc


class PostgresEventStore(EventStore):
    """The event store on PostgreSQL. Make one with :meth:`connect`."""

    def __init__(self, pool: asyncpg.Pool, limits: Limits, dsn: str) -> None:
        self._pool = pool
        self._dsn = dsn
        self.limits = limits
        self._signal = AppendSignal()

    @classmethod
    async def connect(
        cls,
        dsn: str,
        *,
        limits: Limits | None = None,
        pool_size: int = 20,
        command_timeout: float = 30.0,
    ) -> PostgresEventStore:
        """Create the connection pool. Connections are opened lazily, so a database that
        is down now makes calls raise StoreUnavailable until it is back."""
        pool = asyncpg.create_pool(
            dsn,
            min_size=0,
            max_size=pool_size,
            command_timeout=command_timeout,
            timeout=10,
        )
        await pool
        return cls(pool, limits or Limits(), dsn)

    async def append(
        self,
        stream_id: str,
        events: Sequence[NewEvent],
        expected_version: ExpectedVersion = ANY,
    ) -> AppendResult:
        check_stream_id(stream_id, self.limits)
        expected = check_expected_version(expected_version)
        encoded = encode_events(events, self.limits)
        args = (
            stream_id,
            expected,
            [e.event.event_id for e in encoded],
            [e.event.type for e in encoded],
            [e.data_json for e in encoded],
            [e.metadata_json for e in encoded],
        )
        for attempt in range(_ANY_RETRIES + 1):
            try:
                async with translate_errors():
                    rows = await self._pool.fetch(
                        "SELECT * FROM chronicle_append($1, $2, $3, $4, $5, $6)", *args
                    )
                break
            except asyncpg.UniqueViolationError as exc:
                await self._on_unique_violation(exc, stream_id, expected, attempt, args[2][0])
            except asyncpg.PostgresError as exc:
                await self._on_raise(exc, stream_id, expected, encoded[0].event.event_id)
        if rows[0]["out_replayed"]:
            return await self._replay(stream_id, args[2])
        self._signal.notify()
        return self._result(stream_id, encoded, rows)

    async def _replay(self, stream_id: str, ids: list[UUID]) -> AppendResult:
        """The events as first recorded, for an append that was already done."""
        async with translate_errors():
            rows = await self._pool.fetch(
                f"SELECT {_COLUMNS} FROM chronicle_events WHERE event_id = ANY($1::uuid[])"
                " ORDER BY position",
                ids,
            )
        events = tuple(_to_event(row) for row in rows)
        return AppendResult(stream_id, events[-1].version, events[-1].position, events, True)

    async def _on_unique_violation(
        self,
        exc: asyncpg.UniqueViolationError,
        stream_id: str,
        expected: int | None,
        attempt: int,
        first_id: UUID,
    ) -> None:
        """A concurrent append won a race: on the version, report (exact expectation) or
        retry (ANY); on an event id, retry so the function finds and replays it."""
        if exc.constraint_name == "chronicle_events_stream_version":
            if expected is not None or attempt == _ANY_RETRIES:
                current = await self.stream_version(stream_id)
                shown = "any" if expected is None else expected
                raise ConcurrencyError(stream_id, shown, current) from exc
            return
        if attempt >= 1:
            raise EventIdConflict(first_id, "a concurrent append of other content") from exc

    async def _on_raise(
        self, exc: asyncpg.PostgresError, stream_id: str, expected: int | None, first_id: UUID
    ) -> None:
        if exc.sqlstate == "CH002":
            detail = getattr(exc, "detail", None) or "0"
            raise ConcurrencyError(stream_id, expected, int(detail)) from exc
        if exc.sqlstate == "CH001":
            raise EventIdConflict(first_id, "another stream, type or data") from exc
        if exc.sqlstate == "CH003":
            raise BatchTooLarge("too many events appended in one transaction") from exc
        raise EventStoreError(f"append failed: {exc}") from exc  # pragma: no cover

    @staticmethod
    def _result(
        stream_id: str, encoded: Sequence[Any], rows: Sequence[asyncpg.Record]
    ) -> AppendResult:
        recorded = tuple(
            RecordedEvent(
                event_id=row["out_event_id"],
                stream_id=stream_id,
                version=row["out_version"],
                position=row["out_position"],
                type=item.event.type,
                data=json.loads(item.data_json),
                metadata=json.loads(item.metadata_json),
                recorded_at=row["out_recorded_at"],
            )
            for item, row in zip(encoded, rows, strict=True)
        )
        return AppendResult(
            stream_id=stream_id,
            version=recorded[-1].version,
            position=recorded[-1].position,
            events=recorded,
        )

    async def read_stream(
        self,
        stream_id: str,
        from_version: int | None = None,
        *,
        backwards: bool = False,
        limit: int | None = None,
    ) -> list[RecordedEvent]:
        check_stream_id(stream_id, self.limits)
        if from_version is not None:
            check_non_negative("from_version", from_version)
        if limit is not None:
            check_non_negative("limit", limit)
        if backwards:
            start = (1 << 62) if from_version is None else from_version
            sql = f"""SELECT {_COLUMNS} FROM chronicle_events
                      WHERE stream_id = $1 AND version <= $2 ORDER BY version DESC LIMIT $3"""
        else:
            start = 1 if from_version is None else from_version
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
        check_non_negative("after_position", after_position)
        check_non_negative("limit", limit)
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

    async def migrate(self, migrations: Iterable[Migration]) -> list[Migration]:
        return await migrate_postgres(self._dsn, migrations)

    async def wait_for_append(self, max_wait: float) -> None:
        await self._signal.wait(max_wait)

    async def close(self) -> None:
        await self._pool.close()


def _to_event(row: asyncpg.Record) -> RecordedEvent:
    return RecordedEvent(
        event_id=row["event_id"],
        stream_id=row["stream_id"],
        version=row["version"],
        position=row["position"],
        type=row["type"],
        data=json.loads(row["data"]),
        metadata=json.loads(row["metadata"]),
        recorded_at=row["recorded_at"],
    )
