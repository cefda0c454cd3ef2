"""The event store's own migrations."""

from __future__ import annotations

from eventstore.migrations import Migration, sql_resource


def migrations() -> list[Migration]:
    """Every schema step of the event log, oldest first."""
    return [
        Migration(
            component="eventstore",
            version=1,
            name="events",
            postgres=sql_resource("eventstore.sql", "pg_0001_events.sql"),
            sqlite=sql_resource("eventstore.sql", "sqlite_0001_events.sql"),
        ),
        Migration(
            component="eventstore",
            version=2,
            name="checkpoints",
            postgres=sql_resource("eventstore.sql", "pg_0002_checkpoints.sql"),
            sqlite=sql_resource("eventstore.sql", "sqlite_0002_checkpoints.sql"),
        ),
    ]
