"""The read database: an SQLAlchemy async engine chosen by URL, and its schema.

``postgresql://…`` runs on asyncpg, ``sqlite:///path`` on aiosqlite, through the same
Core statements. ``sqlite://:memory:`` becomes a named in-memory database shared by
every engine of this process made with the same ``memory_key`` (``chronicle up`` gives
the projector and the query API the same key, so both see one read model).
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote

from sqlalchemy import event
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import AsyncAdaptedQueuePool

from eventstore.migrations import migrate
from eventstore.urls import DatabaseUrl, parse_database_url
from projections import schema

_STATEMENT_SPLIT = re.compile(r";\s*(?:\n|$)")


def sqlalchemy_url(target: DatabaseUrl, memory_key: str = "default") -> str:
    """The SQLAlchemy URL of a Chronicle database URL."""
    if target.backend == "postgresql":
        return "postgresql+asyncpg://" + target.dsn.split("://", 1)[1]
    if target.in_memory:
        name = quote(f"chronicle-read-{memory_key}")
        return f"sqlite+aiosqlite:///file:{name}?mode=memory&cache=shared&uri=true"
    return f"sqlite+aiosqlite:///{target.path}"


def open_engine(
    url: str,
    *,
    writer: bool,
    pool_size: int = 5,
    memory_key: str = "default",
    statement_cache: bool = True,
) -> AsyncEngine:
    """An engine on the read database at ``url`` (nothing connects yet).

    ``writer`` engines on SQLite start every transaction with ``BEGIN IMMEDIATE``: a
    projection reads its checkpoint and then writes, and a deferred transaction that
    upgrades to a write lock can fail at once with "database is locked" instead of
    waiting; taking the write lock first makes writers queue behind each other.
    ``statement_cache=False`` turns off asyncpg's prepared statement cache, whose plans
    go stale when a replay renames tables under a long-lived reader.
    """
    target = parse_database_url(url)
    if target.backend == "postgresql":
        cache = 100 if statement_cache else 0
        return create_async_engine(
            sqlalchemy_url(target),
            pool_size=pool_size,
            max_overflow=0,
            connect_args={"prepared_statement_cache_size": cache},
        )
    # A shared in-memory database lives while one of its connections is open; one
    # pooled connection per engine keeps it alive and serialises the engine's users.
    sizing = {"pool_size": 1, "max_overflow": 0} if target.in_memory else {}
    engine = create_async_engine(
        sqlalchemy_url(target, memory_key),
        connect_args={"timeout": 30},
        poolclass=AsyncAdaptedQueuePool,
        **sizing,
    )
    _configure_sqlite(engine, writer=writer, in_memory=target.in_memory)
    return engine


def _configure_sqlite(engine: AsyncEngine, *, writer: bool, in_memory: bool) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def on_connect(dbapi_connection: Any, _: Any) -> None:
        # SQLAlchemy issues BEGIN itself (below), so the driver must not.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        if not in_memory:
            cursor.execute("PRAGMA journal_mode=WAL")
        if in_memory:
            # Shared-cache readers would otherwise fail with SQLITE_LOCKED while the
            # projector writes, instead of waiting like they do on a file.
            cursor.execute("PRAGMA read_uncommitted=1")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def on_begin(connection: Connection) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE" if writer else "BEGIN")


async def ensure_schema(url: str, engine: AsyncEngine) -> None:
    """Create or upgrade the read models' tables (idempotent).

    A database reachable by URL is migrated like every other component (recorded in
    ``chronicle_migrations``); a shared in-memory one is reachable only through
    ``engine``, so the same DDL runs there directly.
    """
    target = parse_database_url(url)
    if not target.in_memory:
        await migrate(url, schema.migrations())
        return
    async with engine.begin() as conn:
        for step in schema.migrations():
            lines = (line for line in step.sqlite.splitlines() if not line.startswith("--"))
            for statement in _STATEMENT_SPLIT.split("\n".join(lines)):
                if statement.strip():
                    await conn.exec_driver_sql(statement)
