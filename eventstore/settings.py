"""Settings every process that touches the event store shares (environment, 12-factor).

Each process has its own settings class deriving from this one; instances are made in
the process's composition root, never at import time.
"""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from eventstore.limits import MAX_EVENTS_PER_TRANSACTION, Limits


class EventStoreSettings(BaseSettings):
    """``CHRONICLE_*`` variables of the event store and of logging/binding."""

    model_config = SettingsConfigDict(env_prefix="CHRONICLE_", extra="ignore")

    eventstore_url: str = Field(
        default="sqlite:///./chronicle.db",
        description="postgresql://… or sqlite:///path or sqlite://:memory:",
    )
    max_event_bytes: int = Field(default=1024 * 1024, ge=1, description="JSON bytes per event")
    max_batch: int = Field(default=1000, ge=1, le=MAX_EVENTS_PER_TRANSACTION)
    pool_size: int = Field(default=20, ge=1, description="PostgreSQL connections per process")
    append_statements: int = Field(
        default=4,
        ge=1,
        description="PostgreSQL append statements in flight at once (group commit: fewer "
        "means larger groups and less CPU per append, more means more parallel commits)",
    )
    log_level: str = Field(default="INFO")
    http_host: str = Field(default="127.0.0.1", description="bind address of HTTP servers")

    def limits(self) -> Limits:
        return Limits(max_event_bytes=self.max_event_bytes, max_batch=self.max_batch)
