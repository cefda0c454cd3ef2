"""Versioned, idempotent schema migrations for PostgreSQL and SQLite.

Each component (the event store, the write side's idempotency keys, the read models…)
owns an ordered list of :class:`Migration`. ``migrate`` applies the ones a database has
not seen yet, all in one transaction, and records them in ``chronicle_migrations``.
Running it again is a no-op; running it from several processes at once is safe (an
advisory lock on PostgreSQL, ``BEGIN IMMEDIATE`` on SQLite serialise the migrators).
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from importlib import resources

import asyncpg

from eventstore.errors import MigrationError, StoreUnavailable
from eventstore.sqlite_tx import immediate
from eventstore.urls import DatabaseUrl, mask_password, parse_database_url

# Serialises concurrent migrators on one PostgreSQL database (any stable constant).
_MIGRATION_LOCK_KEY = 0x43484D47  # "CHMG"

_BOOKKEEPING_PG = """
CREATE TABLE IF NOT EXISTS chronicle_migrations (
    component  text        NOT NULL,
    version    int         NOT NULL,
    name       text        NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (component, version)
)"""

_BOOKKEEPING_SQLITE = """
CREATE TABLE IF NOT EXISTS chronicle_migrations (
    component  TEXT    NOT NULL,
    version    INTEGER NOT NULL,
    name       TEXT    NOT NULL,
    applied_at TEXT    NOT NULL DEFAULT CURRENT_TIMESTAMP,
    PRIMARY KEY (component, version)
)"""


@dataclass(frozen=True, slots=True)
class Migration:
    """One schema step of one component, with its SQL for each backend."""

    component: str
    version: int
    name: str
    postgres: str
    sqlite: str


def sql_resource(package: str, name: str) -> str:
    """Read a ``.sql`` file shipped inside a package."""
    return resources.files(package).joinpath(name).read_text(encoding="utf-8")


async def migrate(url: str, migrations: Iterable[Migration]) -> list[Migration]:
    """Apply the migrations the database lacks; return those applied (empty if none).

    Raises StoreUnavailable when the database cannot be reached, MigrationError when a
    step fails (nothing of the run is kept).
    """
    target = parse_database_url(url)
    if target.backend == "postgresql":
        return await migrate_postgres(target.dsn, migrations)
    steps = list(migrations)
    return await asyncio.to_thread(_migrate_sqlite, target, steps)


async def migrate_postgres(dsn: str, migrations: Iterable[Migration]) -> list[Migration]:
    """Apply pending migrations to the PostgreSQL database at ``dsn``."""
    steps = sorted(migrations, key=lambda m: (m.component, m.version))
    try:
        conn = await asyncpg.connect(dsn, timeout=10)
    except (TimeoutError, OSError, asyncpg.PostgresError) as exc:
        raise StoreUnavailable(f"cannot reach PostgreSQL at {mask_password(dsn)}: {exc}") from exc
    try:
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", _MIGRATION_LOCK_KEY)
            await conn.execute(_BOOKKEEPING_PG)
            rows = await conn.fetch("SELECT component, version FROM chronicle_migrations")
            done = {(r["component"], r["version"]) for r in rows}
            pending = [m for m in steps if (m.component, m.version) not in done]
            for step in pending:
                await _apply_pg(conn, step)
            return pending
    finally:
        await conn.close()


async def _apply_pg(conn: asyncpg.Connection, step: Migration) -> None:
    try:
        await conn.execute(step.postgres)
    except asyncpg.PostgresError as exc:
        raise MigrationError(f"{step.component} #{step.version} {step.name}: {exc}") from exc
    await conn.execute(
        "INSERT INTO chronicle_migrations (component, version, name) VALUES ($1, $2, $3)",
        step.component,
        step.version,
        step.name,
    )


def _migrate_sqlite(target: DatabaseUrl, steps: Sequence[Migration]) -> list[Migration]:
    try:
        conn = sqlite3.connect(target.path, timeout=30, isolation_level=None)
    except sqlite3.Error as exc:
        raise StoreUnavailable(f"cannot open SQLite database {target.path}: {exc}") from exc
    try:
        return migrate_sqlite_connection(conn, steps)
    finally:
        conn.close()


def migrate_sqlite_connection(
    conn: sqlite3.Connection, migrations: Iterable[Migration]
) -> list[Migration]:
    """Apply pending migrations on an open connection (autocommit mode), one transaction."""
    steps = sorted(migrations, key=lambda m: (m.component, m.version))
    try:
        # The write lock, taken up front, serialises two migrators.
        with immediate(conn):
            conn.execute(_BOOKKEEPING_SQLITE)
            done = set(conn.execute("SELECT component, version FROM chronicle_migrations"))
            pending = [m for m in steps if (m.component, m.version) not in done]
            for step in pending:
                _apply_sqlite(conn, step)
        return pending
    except sqlite3.OperationalError as exc:
        raise StoreUnavailable(f"SQLite database unavailable: {exc}") from exc


def _apply_sqlite(conn: sqlite3.Connection, step: Migration) -> None:
    # executescript() would commit first; run statement by statement to stay in the
    # migration's transaction (SQLite DDL is transactional).
    try:
        for statement in split_sql(step.sqlite):
            conn.execute(statement)
    except sqlite3.Error as exc:
        raise MigrationError(f"{step.component} #{step.version} {step.name}: {exc}") from exc
    conn.execute(
        "INSERT INTO chronicle_migrations (component, version, name) VALUES (?, ?, ?)",
        (step.component, step.version, step.name),
    )


def split_sql(script: str) -> list[str]:
    """Split an SQLite script into complete statements."""
    statements: list[str] = []
    buffer = ""
    for line in script.splitlines(keepends=True):
        buffer += line
        if sqlite3.complete_statement(buffer):
            if buffer.strip():
                statements.append(buffer.strip())
            buffer = ""
    if buffer.strip() and not all(
        part.strip().startswith("--") or not part.strip() for part in buffer.splitlines()
    ):
        raise MigrationError(f"incomplete SQL statement at the end: {buffer.strip()[:80]!r}")
    return statements
