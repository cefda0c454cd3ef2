"""The write side's tables on PostgreSQL, through a small asyncpg pool of their own.

Claims and non-durable completions of concurrent requests are merged into one statement
each (see ``commands.storage.batching``).

Durability: the pool runs with ``synchronous_commit = off``. That is safe here because
of the order of writes. A claim commits before the request appends its events on the
store's connection, and the append's commit flushes the write-ahead log up to its own
commit record, which lies after the claim's: once events are durable, so is their
claim. A crash can lose only claims of requests that wrote nothing, and completions of
successful requests, which the log rebuilds. Responses the log cannot rebuild
(refusals) are completed with ``durable=True``, which commits synchronously.
"""

from __future__ import annotations

from uuid import UUID

import asyncpg

from commands.storage.base import (
    CommandStorage,
    IdempotencyRecord,
    NewClaim,
    Snapshot,
    StoredResponse,
)
from commands.storage.batching import Batcher
from eventstore.postgres import translate_errors

_CLAIM = """
INSERT INTO chronicle_idempotency AS i
    (key_hash, fingerprint, claim_id, request_path, seen_version, created_at, expires_at,
     lease_until)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
ON CONFLICT (key_hash) DO UPDATE SET
    fingerprint = excluded.fingerprint, claim_id = excluded.claim_id,
    request_path = excluded.request_path, seen_version = excluded.seen_version,
    status = NULL, response = NULL, created_at = excluded.created_at,
    expires_at = excluded.expires_at, lease_until = excluded.lease_until
WHERE i.expires_at <= excluded.created_at
RETURNING key_hash"""

_CLAIM_MANY = """
INSERT INTO chronicle_idempotency AS i
    (key_hash, fingerprint, claim_id, request_path, seen_version, created_at, expires_at,
     lease_until)
SELECT * FROM unnest($1::text[], $2::text[], $3::uuid[], $4::text[], $5::bigint[],
                     $6::float8[], $7::float8[], $8::float8[])
ON CONFLICT (key_hash) DO UPDATE SET
    fingerprint = excluded.fingerprint, claim_id = excluded.claim_id,
    request_path = excluded.request_path, seen_version = excluded.seen_version,
    status = NULL, response = NULL, created_at = excluded.created_at,
    expires_at = excluded.expires_at, lease_until = excluded.lease_until
WHERE i.expires_at <= excluded.created_at
RETURNING key_hash"""

_COMPLETE_MANY = """
UPDATE chronicle_idempotency AS i SET status = v.status, response = v.response
FROM unnest($1::text[], $2::uuid[], $3::int[], $4::text[])
     AS v(key_hash, claim_id, status, response)
WHERE i.key_hash = v.key_hash AND i.claim_id = v.claim_id AND i.response IS NULL"""

_SELECT = """
SELECT key_hash, fingerprint, claim_id, request_path, seen_version, status, response,
       expires_at, lease_until
FROM chronicle_idempotency WHERE key_hash = $1"""

_COMPLETE = """
UPDATE chronicle_idempotency SET status = $3, response = $4
WHERE key_hash = $1 AND claim_id = $2 AND response IS NULL"""


class PostgresCommandStorage(CommandStorage):
    """Make one with :meth:`connect`; the pool opens connections lazily."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
        # One statement in flight each: whatever arrives meanwhile rides the next one.
        self._claims: Batcher[NewClaim, bool] = Batcher(self._claim_many, limit=1)
        self._completions: Batcher[tuple[str, UUID, StoredResponse], None] = Batcher(
            self._complete_many, limit=1
        )

    @classmethod
    async def connect(cls, dsn: str, *, pool_size: int = 10) -> PostgresCommandStorage:
        pool = asyncpg.create_pool(
            dsn,
            min_size=0,
            max_size=pool_size,
            command_timeout=30,
            timeout=10,
            server_settings={"synchronous_commit": "off"},
            reset=_nothing_to_reset,
        )
        await pool
        return cls(pool)

    async def claim(self, claim: NewClaim) -> tuple[bool, IdempotencyRecord]:
        for _ in range(3):
            if await self._claims.submit(claim):
                return True, _new_record(claim)
            async with translate_errors():
                row = await self._pool.fetchrow(_SELECT, claim.key_hash)
            if row is not None:
                return False, _to_record(row)
            # Purged between the two statements: claim again.
        raise RuntimeError(f"idempotency key {claim.key_hash} keeps disappearing")

    async def _claim_many(self, claims: list[NewClaim]) -> list[bool]:
        """One statement for a batch; the first claim of a key in it may win, a repeat of
        the same key in the same batch cannot (it will find the first's record)."""
        first: dict[str, NewClaim] = {}
        for claim in claims:
            first.setdefault(claim.key_hash, claim)
        batch = list(first.values())
        columns = (
            [c.key_hash for c in batch],
            [c.fingerprint for c in batch],
            [c.claim_id for c in batch],
            [c.request_path for c in batch],
            [c.seen_version for c in batch],
            [c.now for c in batch],
            [c.expires_at for c in batch],
            [c.lease_until for c in batch],
        )
        async with translate_errors():
            rows = await self._pool.fetch(_CLAIM_MANY, *columns)
        won = {row["key_hash"] for row in rows}
        return [c.key_hash in won and first[c.key_hash] is c for c in claims]

    async def take_over(
        self, key_hash: str, claim_id: UUID, now: float, lease_until: float
    ) -> bool:
        async with translate_errors():
            done = await self._pool.fetchval(
                """UPDATE chronicle_idempotency SET lease_until = $4
                   WHERE key_hash = $1 AND claim_id = $2 AND response IS NULL
                     AND lease_until <= $3
                   RETURNING key_hash""",
                key_hash,
                claim_id,
                now,
                lease_until,
            )
        return done is not None

    async def end_lease(self, key_hash: str, claim_id: UUID, now: float) -> None:
        async with translate_errors():
            await self._pool.execute(
                """UPDATE chronicle_idempotency SET lease_until = $3
                   WHERE key_hash = $1 AND claim_id = $2 AND response IS NULL""",
                key_hash,
                claim_id,
                now,
            )

    async def complete(
        self, key_hash: str, claim_id: UUID, response: StoredResponse, *, durable: bool
    ) -> None:
        if not durable:
            await self._completions.submit((key_hash, claim_id, response))
            return
        args = (key_hash, claim_id, response.status, response.to_json())
        async with translate_errors(), self._pool.acquire() as conn, conn.transaction():
            # Refusals cannot be rebuilt from the log: wait for the disk.
            await conn.execute("SET LOCAL synchronous_commit = on")
            await conn.execute(_COMPLETE, *args)

    async def _complete_many(self, items: list[tuple[str, UUID, StoredResponse]]) -> list[None]:
        columns = (
            [key for key, _, _ in items],
            [claim for _, claim, _ in items],
            [response.status for _, _, response in items],
            [response.to_json() for _, _, response in items],
        )
        async with translate_errors():
            await self._pool.execute(_COMPLETE_MANY, *columns)
        return [None] * len(items)

    async def release(self, key_hash: str, claim_id: UUID) -> None:
        async with translate_errors():
            await self._pool.execute(
                """DELETE FROM chronicle_idempotency
                   WHERE key_hash = $1 AND claim_id = $2 AND response IS NULL""",
                key_hash,
                claim_id,
            )

    async def purge_expired(self, now: float, limit: int = 1000) -> int:
        async with translate_errors():
            deleted = await self._pool.fetchval(
                """WITH gone AS (
                       DELETE FROM chronicle_idempotency WHERE key_hash IN (
                           SELECT key_hash FROM chronicle_idempotency
                           WHERE expires_at <= $1 LIMIT $2)
                       RETURNING 1)
                   SELECT count(*) FROM gone""",
                now,
                limit,
            )
        return int(deleted)

    async def load_snapshot(self, stream_id: str) -> Snapshot | None:
        async with translate_errors():
            row = await self._pool.fetchrow(
                """SELECT version, state_version, state FROM chronicle_snapshots
                   WHERE stream_id = $1""",
                stream_id,
            )
        if row is None:
            return None
        return Snapshot(stream_id, row["version"], row["state_version"], row["state"])

    async def save_snapshot(self, snapshot: Snapshot) -> None:
        async with translate_errors():
            await self._pool.execute(
                """INSERT INTO chronicle_snapshots AS s (stream_id, version, state_version, state)
                   VALUES ($1, $2, $3, $4)
                   ON CONFLICT (stream_id) DO UPDATE SET version = excluded.version,
                       state_version = excluded.state_version, state = excluded.state,
                       updated_at = now()
                   WHERE s.version < excluded.version
                      OR s.state_version <> excluded.state_version""",
                snapshot.stream_id,
                snapshot.version,
                snapshot.state_version,
                snapshot.state,
            )

    async def ping(self) -> None:
        async with translate_errors():
            await self._pool.fetchval("SELECT 1 FROM chronicle_idempotency LIMIT 1")

    async def close(self) -> None:
        await self._claims.close()
        await self._completions.close()
        await self._pool.close()


async def _nothing_to_reset(connection: asyncpg.Connection) -> None:
    """Skip asyncpg's reset round trip when a connection returns to the pool: these
    statements leave no session state behind (the one SET is LOCAL to its transaction)."""


def _new_record(claim: NewClaim) -> IdempotencyRecord:
    return IdempotencyRecord(
        claim.key_hash,
        claim.fingerprint,
        claim.claim_id,
        claim.request_path,
        claim.seen_version,
        None,
        claim.expires_at,
        claim.lease_until,
    )


def _to_record(row: asyncpg.Record) -> IdempotencyRecord:
    response = None
    if row["response"] is not None:
        response = StoredResponse.from_json(row["status"], row["response"])
    return IdempotencyRecord(
        row["key_hash"],
        row["fingerprint"],
        row["claim_id"],
        row["request_path"],
        row["seen_version"],
        response,
        row["expires_at"],
        row["lease_until"],
    )
