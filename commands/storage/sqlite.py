"""The write side's tables on SQLite, on the event store's own writer connection.

Every call runs as one function on that connection's thread (``run_write``), so it is
serialised with appends and works for ``:memory:`` too. Each statement commits on its
own (autocommit), durably (``synchronous=FULL``).
"""

from __future__ import annotations

import sqlite3
from uuid import UUID

from commands.storage.base import (
    CommandStorage,
    IdempotencyRecord,
    NewClaim,
    Snapshot,
    StoredResponse,
)
from eventstore.sqlite import SqliteEventStore

_CLAIM = """
INSERT INTO chronicle_idempotency AS i
    (key_hash, fingerprint, claim_id, request_path, seen_version, created_at, expires_at,
     lease_until)
VALUES (?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (key_hash) DO UPDATE SET
    fingerprint = excluded.fingerprint, claim_id = excluded.claim_id,
    request_path = excluded.request_path, seen_version = excluded.seen_version,
    status = NULL, response = NULL, created_at = excluded.created_at,
    expires_at = excluded.expires_at, lease_until = excluded.lease_until
WHERE i.expires_at <= excluded.created_at
RETURNING key_hash"""

_SELECT = """
SELECT key_hash, fingerprint, claim_id, request_path, seen_version, status, response,
       expires_at, lease_until
FROM chronicle_idempotency WHERE key_hash = ?"""


class SqliteCommandStorage(CommandStorage):
    """The tables in ``store``'s database; run the migrations with :meth:`open`."""

    def __init__(self, store: SqliteEventStore) -> None:
        self._store = store

    async def claim(self, claim: NewClaim) -> tuple[bool, IdempotencyRecord]:
        args = (
            claim.key_hash,
            claim.fingerprint,
            str(claim.claim_id),
            claim.request_path,
            claim.seen_version,
            claim.now,
            claim.expires_at,
            claim.lease_until,
        )

        def run(conn: sqlite3.Connection) -> tuple[bool, IdempotencyRecord]:
            # Both statements run back to back on the writer thread: nothing can purge
            # the row in between.
            if conn.execute(_CLAIM, args).fetchone() is not None:
                return True, _to_record(conn.execute(_SELECT, (claim.key_hash,)).fetchone())
            return False, _to_record(conn.execute(_SELECT, (claim.key_hash,)).fetchone())

        return await self._store.run_write(run)

    async def take_over(
        self, key_hash: str, claim_id: UUID, now: float, lease_until: float
    ) -> bool:
        sql = """UPDATE chronicle_idempotency SET lease_until = ?
                 WHERE key_hash = ? AND claim_id = ? AND response IS NULL AND lease_until <= ?
                 RETURNING key_hash"""
        args = (lease_until, key_hash, str(claim_id), now)
        return await self._store.run_write(
            lambda conn: conn.execute(sql, args).fetchone() is not None
        )

    async def end_lease(self, key_hash: str, claim_id: UUID, now: float) -> None:
        sql = """UPDATE chronicle_idempotency SET lease_until = ?
                 WHERE key_hash = ? AND claim_id = ? AND response IS NULL"""
        args = (now, key_hash, str(claim_id))
        await self._store.run_write(lambda conn: conn.execute(sql, args))

    async def complete(
        self, key_hash: str, claim_id: UUID, response: StoredResponse, *, durable: bool
    ) -> None:
        sql = """UPDATE chronicle_idempotency SET status = ?, response = ?
                 WHERE key_hash = ? AND claim_id = ? AND response IS NULL"""
        args = (response.status, response.to_json(), key_hash, str(claim_id))
        await self._store.run_write(lambda conn: conn.execute(sql, args))

    async def release(self, key_hash: str, claim_id: UUID) -> None:
        sql = """DELETE FROM chronicle_idempotency
                 WHERE key_hash = ? AND claim_id = ? AND response IS NULL"""
        await self._store.run_write(lambda conn: conn.execute(sql, (key_hash, str(claim_id))))

    async def purge_expired(self, now: float, limit: int = 1000) -> int:
        sql = """DELETE FROM chronicle_idempotency WHERE key_hash IN (
                     SELECT key_hash FROM chronicle_idempotency WHERE expires_at <= ? LIMIT ?)"""
        return await self._store.run_write(lambda conn: conn.execute(sql, (now, limit)).rowcount)

    async def load_snapshot(self, stream_id: str) -> Snapshot | None:
        sql = "SELECT version, state_version, state FROM chronicle_snapshots WHERE stream_id = ?"
        row = await self._store.run_write(lambda conn: conn.execute(sql, (stream_id,)).fetchone())
        return None if row is None else Snapshot(stream_id, int(row[0]), int(row[1]), row[2])

    async def save_snapshot(self, snapshot: Snapshot) -> None:
        sql = """INSERT INTO chronicle_snapshots AS s (stream_id, version, state_version, state)
                 VALUES (?, ?, ?, ?)
                 ON CONFLICT (stream_id) DO UPDATE SET version = excluded.version,
                     state_version = excluded.state_version, state = excluded.state,
                     updated_at = CURRENT_TIMESTAMP
                 WHERE s.version < excluded.version OR s.state_version <> excluded.state_version"""
        args = (snapshot.stream_id, snapshot.version, snapshot.state_version, snapshot.state)
        await self._store.run_write(lambda conn: conn.execute(sql, args))

    async def ping(self) -> None:
        sql = "SELECT 1 FROM chronicle_idempotency LIMIT 1"
        await self._store.run_write(lambda conn: conn.execute(sql).fetchall())


def _to_record(row: tuple[object, ...]) -> IdempotencyRecord:
    key_hash, fingerprint, claim_id, path, seen, status, response, expires, lease = row
    stored = None
    if response is not None:
        stored = StoredResponse.from_json(int(str(status)), str(response))
    return IdempotencyRecord(
        key_hash=str(key_hash),
        fingerprint=str(fingerprint),
        claim_id=UUID(str(claim_id)),
        request_path=str(path),
        seen_version=int(str(seen)),
        response=stored,
        expires_at=float(str(expires)),
        lease_until=float(str(lease)),
    )
