"""Loading and storing keyed rows in bulk: how projections apply a batch in a few
statements (one SELECT, one multi-row INSERT, one executemany UPDATE) instead of one
round trip per event."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from operator import itemgetter
from typing import Any, TypeAlias

from sqlalchemy import Table, bindparam, select, tuple_
from sqlalchemy.ext.asyncio import AsyncConnection

Row: TypeAlias = dict[str, Any]

_COPY_FROM = 200
"""Rows from which COPY beats a multi-row INSERT."""

_CHUNK = 500
"""Keys per ``IN (…)`` list: far below SQLite's and asyncpg's parameter limits."""


def key_of(table: Table, row: Mapping[str, Any]) -> tuple[Any, ...]:
    return tuple(row[column.name] for column in table.primary_key.columns)


def _key_names(table: Table) -> list[str]:
    return [column.name for column in table.primary_key.columns]


async def load_rows(
    conn: AsyncConnection, table: Table, keys: Collection[tuple[Any, ...]]
) -> dict[tuple[Any, ...], Row]:
    """The rows of ``table`` whose primary key is one of ``keys``, by key."""
    found: dict[tuple[Any, ...], Row] = {}
    columns = list(table.primary_key.columns)
    ordered = sorted(keys)
    for start in range(0, len(ordered), _CHUNK):
        chunk = ordered[start : start + _CHUNK]
        if len(columns) == 1:
            condition = columns[0].in_([key[0] for key in chunk])
        else:
            condition = tuple_(*columns).in_(chunk)
        result = await conn.execute(select(table).where(condition))
        for row in result.mappings():
            found[key_of(table, dict(row))] = dict(row)
    return found


async def insert_rows(conn: AsyncConnection, table: Table, rows: Iterable[Row]) -> None:
    """Insert ``rows`` in the caller's transaction: COPY on PostgreSQL for a large batch
    (a replay's), a multi-row INSERT otherwise."""
    batch = list(rows)
    if not batch:
        return
    if conn.dialect.name == "postgresql" and len(batch) >= _COPY_FROM:
        # The same connection, inside the transaction SQLAlchemy has begun on it (the
        # checkpoint was locked first), so the COPY commits or rolls back with it.
        raw = await conn.get_raw_connection()
        columns = [column.name for column in table.columns]
        # itemgetter returns a tuple for two names or more (every table has several).
        as_record = itemgetter(*columns)
        records = [as_record(row) for row in batch]
        await raw.driver_connection.copy_records_to_table(  # type: ignore[union-attr]
            table.name, records=records, columns=columns
        )
        return
    await conn.execute(table.insert(), batch)


async def update_rows(conn: AsyncConnection, table: Table, rows: Iterable[Row]) -> None:
    """Update whole rows by primary key (executemany)."""
    batch = list(rows)
    if not batch:
        return
    keys = [column.name for column in table.primary_key.columns]
    statement = table.update()
    for name in keys:
        statement = statement.where(table.c[name] == bindparam(f"key_{name}"))
    values: dict[str, Any] = {
        c.name: bindparam(c.name) for c in table.columns if c.name not in keys
    }
    params = [{**row, **{f"key_{name}": row[name] for name in keys}} for row in batch]
    await conn.execute(statement.values(values), params)


class RowSet:
    """The rows a batch touches: load once, change in memory, store what changed."""

    def __init__(self, table: Table) -> None:
        self.table = table
        # The key's column names, looked up once: asking the table for every row put
        # cost more than folding the event into it.
        self._key_names = _key_names(table)
        self.rows: dict[tuple[Any, ...], Row] = {}
        self._stored: set[tuple[Any, ...]] = set()
        self._dirty: set[tuple[Any, ...]] = set()

    async def load(self, conn: AsyncConnection, keys: Collection[tuple[Any, ...]]) -> None:
        self.rows = await load_rows(conn, self.table, keys)
        self._stored = set(self.rows)

    def get(self, key: tuple[Any, ...]) -> Row | None:
        return self.rows.get(key)

    def put(self, row: Row) -> None:
        key = tuple([row[name] for name in self._key_names])
        self.rows[key] = row
        self._dirty.add(key)

    async def store(self, conn: AsyncConnection) -> None:
        new = [self.rows[k] for k in sorted(self._dirty - self._stored)]
        changed = [self.rows[k] for k in sorted(self._dirty & self._stored)]
        await insert_rows(conn, self.table, new)
        await update_rows(conn, self.table, changed)
