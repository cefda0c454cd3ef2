"""Projection checkpoints in the read database: the position each read model has
applied, read and written inside the read model's own transaction."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import bindparam, select, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from projections.tables import CHECKPOINTS, checkpoints_table

CHECKPOINT_TABLE = checkpoints_table()
_TABLE = CHECKPOINT_TABLE

# Built once: a fresh statement per batch cost more to build and hash (the compiled
# cache's key) than to run.
_LOCK = select(_TABLE.c.position).where(_TABLE.c.projection == bindparam("name")).with_for_update()
_SAVE = (
    _TABLE.update()
    .where(_TABLE.c.projection == bindparam("name"))
    .values(position=bindparam("position"), updated_at=bindparam("now"))
)

_ADVANCE = text(
    f"WITH prior AS (SELECT position FROM {CHECKPOINTS} WHERE projection = :name FOR UPDATE)"
    f" UPDATE {CHECKPOINTS} SET position = GREATEST({CHECKPOINTS}.position, :position),"
    f" updated_at = CASE WHEN {CHECKPOINTS}.position < :position THEN :now"
    f" ELSE {CHECKPOINTS}.updated_at END"
    f" FROM prior WHERE {CHECKPOINTS}.projection = :name RETURNING prior.position"
)
"""PostgreSQL: lock the row, move it forward (never back) and return where it was, in
one round trip. The CTE's ``FOR UPDATE`` waits for a concurrent writer of the row and
then returns the version it committed (READ COMMITTED re-reads a row it waited for), so
``prior`` is never older than the last commit; the UPDATE re-checks that same latest
version before changing it."""

_ENSURE = text(
    f"INSERT INTO {CHECKPOINTS} (projection, position, updated_at)"
    " VALUES (:projection, 0, :now) ON CONFLICT (projection) DO NOTHING"
)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


async def ensure_checkpoint(conn: AsyncConnection, name: str) -> None:
    """Create ``name``'s row at position 0 unless it exists (idempotent, race-free)."""
    await conn.execute(_ENSURE, {"projection": name, "now": _now()})


async def lock_checkpoint(conn: AsyncConnection, name: str) -> int:
    """``name``'s position, locked until the transaction ends.

    The row lock (``FOR UPDATE`` on PostgreSQL; SQLite's writer transactions hold the
    database's write lock already) serialises every writer of this read model: two
    projector replicas, or a replay's swap, can never apply the same event twice or
    interleave their changes. The row must exist (:func:`ensure_checkpoint`).
    """
    position = (await conn.execute(_LOCK, {"name": name})).scalar_one_or_none()
    if position is None:
        raise LookupError(f"no checkpoint row for projection {name!r}")
    return int(position)


async def advance_checkpoint(conn: AsyncConnection, name: str, position: int) -> int:
    """Lock ``name``'s row as :func:`lock_checkpoint` does, move it to ``position`` unless
    it is there or beyond already, and return the position it had before.

    The move belongs to the caller's transaction: if what the caller applies after it
    fails, the rollback takes the checkpoint back with it. One statement on PostgreSQL;
    SQLite's writer transactions hold the write lock already, so two cost little there.
    """
    if conn.dialect.name != "postgresql":
        prior = await lock_checkpoint(conn, name)
        if position > prior:
            await save_checkpoint(conn, name, position)
        return prior
    params = {"name": name, "position": position, "now": _now()}
    found = (await conn.execute(_ADVANCE, params)).scalar_one_or_none()
    if found is None:
        raise LookupError(f"no checkpoint row for projection {name!r}")
    return int(found)


async def save_checkpoint(conn: AsyncConnection, name: str, position: int) -> None:
    await conn.execute(_SAVE, {"name": name, "position": position, "now": _now()})


async def delete_checkpoint(conn: AsyncConnection, name: str) -> None:
    await conn.execute(_TABLE.delete().where(_TABLE.c.projection == name))


async def read_checkpoint(conn: AsyncConnection, name: str) -> int:
    """``name``'s position without locking (0 when it has none yet)."""
    query = select(_TABLE.c.position).where(_TABLE.c.projection == name)
    position = (await conn.execute(query)).scalar_one_or_none()
    return int(position or 0)


async def read_checkpoints(engine: AsyncEngine) -> dict[str, int]:
    """Every projection's position."""
    async with engine.connect() as conn:
        rows = (await conn.execute(select(_TABLE.c.projection, _TABLE.c.position))).all()
    return {name: int(position) for name, position in rows}
