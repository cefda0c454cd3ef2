"""Storage of the write side's own tables (idempotency keys, snapshots)."""

from __future__ import annotations

from commands.errors import ConfigurationError
from commands.schema import migrations
from commands.storage.base import CommandStorage
from commands.storage.memory import MemoryCommandStorage
from commands.storage.postgres import PostgresCommandStorage
from commands.storage.sqlite import SqliteCommandStorage
from eventstore import EventStore
from eventstore.sqlite import SqliteEventStore
from eventstore.urls import parse_database_url


async def open_command_storage(
    store: EventStore, url: str, *, pool_size: int = 10
) -> CommandStorage:
    """The write side's tables in the same database as ``store``.

    SQLite: on the store's own connection (``:memory:`` included), migrated here the way
    the embedded store migrates itself. PostgreSQL: a small pool of its own to ``url``
    (the store's URL); ``chronicle migrate`` creates the tables.
    """
    if isinstance(store, SqliteEventStore):
        await store.migrate(migrations())
        return SqliteCommandStorage(store)
    target = parse_database_url(url)
    if target.backend == "postgresql":
        return await PostgresCommandStorage.connect(target.dsn, pool_size=pool_size)
    raise ConfigurationError(
        f"the write side's tables need the store's database: a SqliteEventStore or a "
        f"PostgreSQL URL, not {type(store).__name__} with {target.safe}"
    )


__all__ = [
    "CommandStorage",
    "MemoryCommandStorage",
    "PostgresCommandStorage",
    "SqliteCommandStorage",
    "open_command_storage",
]
