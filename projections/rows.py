"""Loading and storing keyed rows in bulk: how projections apply a batch in a few
statements (one SELECT, one multi-row INSERT, one executemany UPDATE) instead of one
round trip per event.

Each table's statements are built once and kept on the table (``Table.info``): a live
batch of twenty events is cheap to fold, and building, hashing (the compiled cache's
key) and rendering fresh statements for it used to cost more than the fold itself.
Keys are bound as one array on PostgreSQL (``= ANY($1)``), so the SQL text is the same
for any number of keys and asyncpg's prepared statement is reused; SQLite has no
arrays and gets an expanding ``IN``.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping
from operator import itemgetter
from typing import Any, TypeAlias, TypeVar

from sqlalchemy import Select, Table, Update, any_, bindparam, select, tuple_
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.dml import Insert

Row: TypeAlias = dict[str, Any]
T = TypeVar("T")

_COPY_FROM = 200
"""Rows from which COPY beats a multi-row INSERT."""

_CHUNK = 500
"""Keys per ``IN (…)`` list on SQLite: far below its parameter limit."""


def key_of(table: Table, row: Mapping[str, Any]) -> tuple[Any, ...]:
    return tuple(row[column.name] for column in table.primary_key.columns)


def _key_names(table: Table) -> list[str]:
    return [column.name for column in table.primary_key.columns]


def cached(table: Table, name: str, build: Callable[[], T]) -> T:
    """``build()``, made once per table and kept in its ``info``: a shadow table of a
    replay is another Table object, so it gets statements of its own."""
    statements: dict[str, Any] = table.info.setdefault("chronicle_statements", {})
    found = statements.get(name)
    if found is None:
        found = statements[name] = build()
    return found


def uses_arrays(conn: AsyncConnection) -> bool:
    """Whether keys can be bound as one array parameter (PostgreSQL)."""
    return conn.dialect.name == "postgresql"


def _select_by_array(table: Table) -> Select[Any]:
    column = next(iter(table.primary_key.columns))
    return select(table).where(column == any_(bindparam("keys", type_=ARRAY(column.type))))


def _select_by_list(table: Table) -> Select[Any]:
    columns = list(table.primary_key.columns)
    target = columns[0] if len(columns) == 1 else tuple_(*columns)
    return select(table).where(target.in_(bindparam("keys", expanding=True)))


def _update_by_key(table: Table) -> Update:
    keys = _key_names(table)
    statement = table.update()
    for name in keys:
        statement = statement.where(table.c[name] == bindparam(f"key_{name}"))
    values: dict[str, Any] = {
        c.name: bindparam(c.name) for c in table.columns if c.name not in keys
    }
    return statement.values(values)


async def load_rows(
    conn: AsyncConnection, table: Table, keys: Collection[tuple[Any, ...]]
) -> dict[tuple[Any, ...], Row]:
    """The rows of ``table`` whose primary key is one of ``keys``, by key."""
    if not keys:
        return {}
    names = _key_names(table)
    single = len(names) == 1
    if single and uses_arrays(conn):
        statement = cached(table, "select_by_array", lambda: _select_by_array(table))
        chunks = [[key[0] for key in keys]]
    else:
        statement = cached(table, "select_by_list", lambda: _select_by_list(table))
        ordered = [key[0] for key in keys] if single else list(keys)
        chunks = [ordered[start : start + _CHUNK] for start in range(0, len(ordered), _CHUNK)]
    key = itemgetter(*names)
    found: dict[tuple[Any, ...], Row] = {}
    for chunk in chunks:
        result = await conn.execute(statement, {"keys": chunk})
        for mapping in result.mappings():
            row = dict(mapping)
            found[(key(row),) if single else key(row)] = row
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
    statement: Insert = cached(table, "insert", table.insert)
    await conn.execute(statement, batch)


async def update_rows(conn: AsyncConnection, table: Table, rows: Iterable[Row]) -> None:
    """Update whole rows by primary key (executemany)."""
    batch = list(rows)
    if not batch:
        return
    keys = _key_names(table)
    statement = cached(table, "update_by_key", lambda: _update_by_key(table))
    params = [{**row, **{f"key_{name}": row[name] for name in keys}} for row in batch]
    await conn.execute(statement, params)


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
