"""Open the event store named by a URL: the one place that chooses a backend."""

from __future__ import annotations

from eventstore.limits import Limits
from eventstore.postgres import PostgresEventStore
from eventstore.schema import migrations
from eventstore.sqlite import SqliteEventStore
from eventstore.store import EventStore
from eventstore.urls import parse_database_url


async def open_event_store(
    url: str,
    *,
    limits: Limits | None = None,
    pool_size: int = 20,
    append_statements: int = 4,
) -> EventStore:
    """Open ``postgresql://…`` or ``sqlite://…``.

    An SQLite store creates or upgrades its schema on open: it is the embedded,
    zero-configuration backend, and nothing else can reach a ``:memory:`` database.
    PostgreSQL is migrated by ``chronicle migrate``; until then calls raise
    SchemaNotReady.
    """
    target = parse_database_url(url)
    if target.backend == "postgresql":
        return await PostgresEventStore.connect(
            target.dsn, limits=limits, pool_size=pool_size, append_statements=append_statements
        )
    store = await SqliteEventStore.open(target.path, limits=limits)
    await store.migrate(migrations())
    return store
