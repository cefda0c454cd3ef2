from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from eventstore import EventStore, open_event_store


@pytest.fixture
async def memory_store() -> AsyncIterator[EventStore]:
    """An empty in-memory SQLite event store (no network)."""
    store = await open_event_store("sqlite://:memory:")
    try:
        yield store
    finally:
        await store.close()
