"""The append-only event log: interface, PostgreSQL and SQLite backends, and the relay.

The public surface is re-exported here; see :class:`eventstore.store.EventStore` for the
contract and docs/eventstore.md for the ordering design.
"""

from eventstore.errors import (
    BatchTooLarge,
    ConcurrencyError,
    EventIdConflict,
    EventStoreError,
    InvalidAppend,
    InvalidEvent,
    InvalidStreamId,
    InvalidVersion,
    MigrationError,
    PositionsBehind,
    SchemaNotReady,
    StoreUnavailable,
)
from eventstore.factory import open_event_store
from eventstore.limits import Limits
from eventstore.model import (
    ANY,
    NO_STREAM,
    AppendResult,
    ExpectedVersion,
    NewEvent,
    RecordedEvent,
    StreamState,
    category_of,
    new_event_id,
)
from eventstore.store import EventStore, PollPolicy

__all__ = [
    "ANY",
    "NO_STREAM",
    "AppendResult",
    "BatchTooLarge",
    "ConcurrencyError",
    "EventIdConflict",
    "EventStore",
    "EventStoreError",
    "ExpectedVersion",
    "InvalidAppend",
    "InvalidEvent",
    "InvalidStreamId",
    "InvalidVersion",
    "Limits",
    "MigrationError",
    "NewEvent",
    "PollPolicy",
    "PositionsBehind",
    "RecordedEvent",
    "SchemaNotReady",
    "StoreUnavailable",
    "StreamState",
    "category_of",
    "new_event_id",
    "open_event_store",
]
