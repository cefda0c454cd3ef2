"""The write side's schema migrations (component ``commands``)."""

from __future__ import annotations

from eventstore.migrations import Migration, sql_resource


def migrations() -> list[Migration]:
    """Every schema step of the write side's tables, oldest first."""
    return [
        Migration(
            component="commands",
            version=1,
            name="idempotency keys and snapshots",
            postgres=sql_resource("commands.sql", "pg_0001_write_side.sql"),
            sqlite=sql_resource("commands.sql", "sqlite_0001_write_side.sql"),
        ),
    ]
