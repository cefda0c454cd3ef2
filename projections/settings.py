"""Settings of the projector and of the query API (environment, 12-factor).

Both read ``CHRONICLE_READ_DATABASE_URL`` (default: the event store's URL). Instances
are made in each process's composition root, never at import time.
"""

from __future__ import annotations

from pydantic import Field

from eventstore.bus.settings import BrokerSettings
from eventstore.settings import EventStoreSettings
from projections.runner import RunnerConfig

DEFAULT_CORS_ORIGINS = "http://127.0.0.1:8002,http://localhost:8002"


class ReadDatabaseSettings(EventStoreSettings):
    """Where the read models live."""

    read_database_url: str | None = Field(
        default=None,
        description="read models' database; default CHRONICLE_EVENTSTORE_URL; the query"
        " API may point it at a PostgreSQL replica, the projector needs the primary",
    )
    read_pool_size: int = Field(default=10, ge=1, description="read database connections")

    @property
    def read_url(self) -> str:
        return self.read_database_url or self.eventstore_url


class ProjectorSettings(ReadDatabaseSettings, BrokerSettings):
    """``CHRONICLE_*`` variables of `chronicle serve projector`."""

    http_port: int = Field(default=8004, ge=0, le=65535, description="health and metrics")
    projector_batch_size: int = Field(
        default=500, ge=1, le=10_000, description="events applied per transaction at most"
    )
    projector_prefetch: int = Field(
        default=1000, ge=1, description="unacknowledged deliveries per projection queue"
    )
    projector_max_attempts: int = Field(
        default=5, ge=1, description="tries of one event before its projection halts"
    )
    projector_retry_delay: float = Field(
        default=0.2, gt=0, description="first back-off after a failed apply, seconds"
    )
    projector_retry_max_delay: float = Field(
        default=5.0, gt=0, description="longest back-off after a failure, seconds"
    )
    projector_projections: str = Field(
        default="", description="comma-separated projections to run; empty = all"
    )

    def runner_config(self) -> RunnerConfig:
        return RunnerConfig(
            batch_size=self.projector_batch_size,
            prefetch=self.projector_prefetch,
            max_attempts=self.projector_max_attempts,
            retry_delay=self.projector_retry_delay,
            retry_max_delay=max(self.projector_retry_max_delay, self.projector_retry_delay),
        )

    def selected(self) -> list[str]:
        return [name.strip() for name in self.projector_projections.split(",") if name.strip()]


class QueriesSettings(ReadDatabaseSettings):
    """``CHRONICLE_*`` variables of `chronicle serve queries`."""

    http_port: int = Field(default=8001, ge=0, le=65535)
    min_position_timeout: float = Field(
        default=5.0, ge=0, le=60, description="longest wait for ?min_position, seconds"
    )
    cors_origins: str = Field(
        default=DEFAULT_CORS_ORIGINS,
        description="comma-separated origins allowed to GET from a browser (the dashboard)",
    )
    page_limit_max: int = Field(default=500, ge=1, description="largest ?limit accepted")

    def origins(self) -> list[str]:
        return [origin.strip() for origin in self.cors_origins.split(",") if origin.strip()]
