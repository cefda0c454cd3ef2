"""The embedded SQLite backend: a file, or ``:memory:`` for tests.

Each connection lives on its own thread and every operation runs there as one function,
so a transaction is never interleaved with another call on that connection. Writers are
serialised by SQLite itself (``BEGIN IMMEDIATE`` takes the database's write lock, across
processes too), so the AUTOINCREMENT position is handed out in commit order. A file
database gets a second connection for reads (WAL mode lets them run beside a write);
``:memory:`` has one connection for everything.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Callable, Collection, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any, TypeVar
from uuid import UUID

from eventstore.errors import (
    ConcurrencyError,
    EventIdConflict,
    EventStoreError,
    InvalidVersion,
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
from eventstore.migrations import Migration, migrate_sqlite_connection
from eventstore.model import ANY, AppendResult, ExpectedVersion, NewEvent, RecordedEvent
from eventstore.signal import AppendSignal
from eventstore.sqlite_tx import immediate
from eventstore.store import EventStore, check_read_all, stream_read_start

T = TypeVar("T")

_COLUMNS = "position, event_id, stream_id, version, type, data, metadata, recorded_at"


class _Connection:
    """One sqlite3 connection confined to one thread."""

    def __init__(self, path: str) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite")
        self._path = path
        self._conn: sqlite3.Connection | None = None

    def _open(self) -> sqlite3.Connection:
        if self._conn is None:
            conn = sqlite3.connect(
                self._path, timeout=30, isolation_level=None, check_same_thread=False
            )
            if self._path != ":memory:":
                conn.execute("PRAGMA journal_mode=WAL")
            # FULL: a committed append survives a power cut, not just a process crash.
            conn.execute("PRAGMA synchronous=FULL")
            self._conn = conn
        return self._conn

    async def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, lambda: fn(self._open()))
        except EventStoreError:
            raise
        except sqlite3.OperationalError as exc:
            if "no such table" in str(exc):
                raise SchemaNotReady(f"run `chronicle migrate`: {exc}") from exc
            raise StoreUnavailable(f"SQLite unavailable: {exc}") from exc
        except sqlite3.Error as exc:
            raise EventStoreError(f"SQLite error: {exc}") from exc

    async def close(self) -> None:
        def _close(_: sqlite3.Connection) -> None:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

        if self._conn is not None:
            await self.run(_close)
        self._executor.shutdown(wait=True)


class SqliteEventStore(EventStore):
    """The event store on SQLite. Make one with :meth:`open`."""

    def __init__(self, path: str, limits: Limits) -> None:
        self.limits = limits
        self.path = path
        self._writer = _Connection(path)
        self._reader = self._writer if path == ":memory:" else _Connection(path)
        self._signal = AppendSignal()
        self.metrics = StoreMetrics("sqlite")

    @classmethod
    async def open(cls, path: str, *, limits: Limits | None = None) -> SqliteEventStore:
        return cls(path, limits or Limits())

    async def run_write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn`` on the writer connection's thread, serialised with appends.

        For components that keep tables in the same database (``:memory:`` included)."""
        return await self._writer.run(fn)

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
        expected = check_expected_version(expected_version)
        encoded = encode_events(events, self.limits)
        result = await self._writer.run(lambda conn: _append(conn, stream_id, expected, encoded))
        if not result.replayed:
            self._signal.notify()
        return result

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
            sql = f"""SELECT {_COLUMNS} FROM chronicle_events WHERE stream_id = ?
                      AND version <= ? ORDER BY version DESC LIMIT ?"""
        else:
            sql = f"""SELECT {_COLUMNS} FROM chronicle_events WHERE stream_id = ?
                      AND version >= ? ORDER BY version LIMIT ?"""
        params = (stream_id, start, -1 if limit is None else limit)
        return await self._reader.run(lambda conn: _fetch(conn, sql, params))

    async def read_all(
        self,
        after_position: int = 0,
        limit: int = 1000,
        *,
        categories: Collection[str] | None = None,
        types: Collection[str] | None = None,
    ) -> list[RecordedEvent]:
        check_read_all(after_position, limit)
        where = "position > ?"
        params: list[object] = [after_position]
        for column, values in (("category", categories), ("type", types)):
            if values is not None:
                chosen = list(values)
                where += f" AND {column} IN ({','.join('?' * len(chosen))})"
                params += chosen
        sql = f"SELECT {_COLUMNS} FROM chronicle_events WHERE {where} ORDER BY position LIMIT ?"
        params.append(limit)
        return await self._reader.run(lambda conn: _fetch(conn, sql, params))

    async def head_position(self) -> int:
        sql = "SELECT coalesce(max(position), 0) FROM chronicle_events"
        return await self._reader.run(lambda conn: int(conn.execute(sql).fetchone()[0]))

    async def stream_version(self, stream_id: str) -> int:
        check_stream_id(stream_id, self.limits)
        return await self._reader.run(lambda conn: _version(conn, stream_id))

    async def load_checkpoint(self, name: str) -> int:
        sql = "SELECT position FROM chronicle_checkpoints WHERE name = ?"

        def load(conn: sqlite3.Connection) -> int:
            row = conn.execute(sql, (name,)).fetchone()
            return 0 if row is None else int(row[0])

        return await self._reader.run(load)

    async def save_checkpoint(self, name: str, position: int) -> None:
        check_non_negative("position", position)
        sql = """INSERT INTO chronicle_checkpoints (name, position) VALUES (?, ?)
                 ON CONFLICT (name) DO UPDATE SET position = excluded.position,
                     updated_at = CURRENT_TIMESTAMP
                 WHERE position <= excluded.position
                 RETURNING position"""

        def save(conn: sqlite3.Connection) -> bool:
            return conn.execute(sql, (name, position)).fetchone() is not None

        if not await self._writer.run(save):
            raise InvalidVersion(f"checkpoint {name!r} is beyond {position}; it never goes back")

    async def ping(self) -> None:
        await self._reader.run(lambda conn: conn.execute("SELECT 1 FROM chronicle_events LIMIT 1"))

    async def migrate(self, migrations: Iterable[Migration]) -> list[Migration]:
        steps = list(migrations)
        return await self._writer.run(lambda conn: migrate_sqlite_connection(conn, steps))

    async def wait_for_append(self, max_wait: float) -> None:
        await self._signal.wait(max_wait)

    async def close(self) -> None:
        await self._writer.close()
        if self._reader is not self._writer:
            await self._reader.close()


def _fetch(conn: sqlite3.Connection, sql: str, params: Sequence[Any]) -> list[RecordedEvent]:
    return [_to_event(row) for row in conn.execute(sql, params)]


def _version(conn: sqlite3.Connection, stream_id: str) -> int:
    row = conn.execute(
        "SELECT coalesce(max(version), 0) FROM chronicle_events WHERE stream_id = ?",
        (stream_id,),
    ).fetchone()
    return int(row[0])


def _append(
    conn: sqlite3.Connection, stream_id: str, expected: int | None, encoded: list[EncodedEvent]
) -> AppendResult:
    # BEGIN IMMEDIATE takes the write lock now: the version read below cannot change
    # before our insert commits, and positions are handed out in commit order.
    with immediate(conn):
        return _append_locked(conn, stream_id, expected, encoded)


def _append_locked(
    conn: sqlite3.Connection, stream_id: str, expected: int | None, encoded: list[EncodedEvent]
) -> AppendResult:
    replay = _replayed(conn, stream_id, encoded)
    if replay is not None:
        return replay
    current = _version(conn, stream_id)
    if expected is not None and expected != current:
        raise ConcurrencyError(stream_id, expected, current)
    now = datetime.now(UTC)
    recorded = []
    for offset, item in enumerate(encoded, start=1):
        row = conn.execute(
            """INSERT INTO chronicle_events
               (event_id, stream_id, version, type, data, metadata, recorded_at)
               VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING position""",
            (
                str(item.event.event_id),
                stream_id,
                current + offset,
                item.event.type,
                item.data_json,
                item.metadata_json,
                now.isoformat(),
            ),
        ).fetchone()
        recorded.append(
            RecordedEvent(
                event_id=item.event.event_id,
                stream_id=stream_id,
                version=current + offset,
                position=int(row[0]),
                type=item.event.type,
                data=dict(item.event.data),
                metadata=dict(item.event.metadata),
                recorded_at=now,
            )
        )
    return AppendResult(stream_id, recorded[-1].version, recorded[-1].position, tuple(recorded))


def _replayed(
    conn: sqlite3.Connection, stream_id: str, encoded: list[EncodedEvent]
) -> AppendResult | None:
    """The stored events when this batch was appended before; None when it is new."""
    ids = [str(item.event.event_id) for item in encoded]
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM chronicle_events WHERE event_id IN "
        f"({','.join('?' * len(ids))}) ORDER BY position",
        ids,
    ).fetchall()
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


def _to_event(row: sqlite3.Row | tuple[Any, ...]) -> RecordedEvent:
    position, event_id, stream_id, version, type_, data, metadata, recorded_at = row
    return RecordedEvent(
        event_id=UUID(event_id),
        stream_id=stream_id,
        version=int(version),
        position=int(position),
        type=type_,
        data=json.loads(data),
        metadata=json.loads(metadata),
        recorded_at=datetime.fromisoformat(recorded_at),
    )
