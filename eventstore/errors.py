"""The event store's exception tree.

Every error the store raises derives from :class:`EventStoreError`; driver errors
(asyncpg, sqlite3) are translated inside the backends and never leak::

    EventStoreError
    ├── InvalidAppend            bad input; nothing was written
    │   ├── InvalidStreamId      empty, too long, or control characters
    │   ├── InvalidEvent         bad type, non-object data, not JSON, too large
    │   ├── InvalidVersion       negative or otherwise impossible version
    │   └── BatchTooLarge        more events in one append than allowed
    ├── ConcurrencyError         expected version did not match (carries the current one)
    ├── EventIdConflict          an event id reused with different content
    ├── StoreUnavailable         the database cannot be reached: retry later
    │   └── PositionsBehind      the log is ahead of the cluster's transaction ids
    ├── SchemaNotReady           tables missing or too old: run `chronicle migrate`
    └── MigrationError           a migration failed; the schema was left as it was
"""

from __future__ import annotations

from uuid import UUID


class EventStoreError(Exception):
    """Root of every error raised by the event store."""


class InvalidAppend(EventStoreError, ValueError):
    """The append was rejected before anything was written."""


class InvalidStreamId(InvalidAppend):
    """The stream id is empty, too long, or contains control characters."""


class InvalidEvent(InvalidAppend):
    """An event is malformed: bad type, non-object data, not JSON, or too large."""


class InvalidVersion(InvalidAppend):
    """A version or position argument is negative or otherwise impossible."""


class BatchTooLarge(InvalidAppend):
    """One append carried more events than the configured maximum."""


class ConcurrencyError(EventStoreError):
    """The stream's version is not the one the caller expected.

    ``current`` is the stream's version when the append was rejected (0 when the stream
    does not exist), so the caller can reload and decide again.
    """

    def __init__(self, stream_id: str, expected: object, current: int) -> None:
        super().__init__(
            f"stream {stream_id!r} is at version {current}, expected {expected}",
        )
        self.stream_id = stream_id
        self.expected = expected
        self.current = current


class EventIdConflict(EventStoreError):
    """An event id already stored was appended again with different content."""

    def __init__(self, event_id: UUID, reason: str) -> None:
        super().__init__(f"event {event_id} is already stored with {reason}")
        self.event_id = event_id


class StoreUnavailable(EventStoreError):
    """The database cannot be reached or refused the connection; retrying may succeed."""


class PositionsBehind(StoreUnavailable):
    """PostgreSQL would give new events positions at or below the log's head: the log
    was restored into another cluster (dump and restore, logical replication), whose
    transaction ids, which positions are made of, are behind the old one's. Appends
    are refused until an operator moves the cluster's transaction ids past the log's
    (``pg_resetwal --next-transaction-id``), as every reader would skip such events."""


class SchemaNotReady(EventStoreError):
    """The event store's tables are missing or outdated: run `chronicle migrate`."""


class MigrationError(EventStoreError):
    """A migration failed; the transaction was rolled back and the schema is unchanged."""
