"""Settings of the commands process (``CHRONICLE_*`` environment variables).

Made in the composition root (``chronicle serve commands``, ``chronicle up``), never at
import time.
"""

from __future__ import annotations

from pydantic import Field

from commands.errors import ConfigurationError
from eventstore.settings import EventStoreSettings
from eventstore.tokens import TokenSettings


class CommandsSettings(EventStoreSettings, TokenSettings):
    """Everything the write API and the transfer process manager read."""

    http_port: int = Field(default=8000, ge=0, le=65535)

    jwt_write_scope: str = Field(default="ledger:write", description="scope every write needs")

    max_body_bytes: int = Field(default=16 * 1024, ge=256, description="request body limit")
    idempotency_ttl: float = Field(default=86_400.0, gt=0, description="key lifetime (s)")
    idempotency_lease: float = Field(
        default=10.0, gt=0, description="seconds before a stalled keyed request is taken over"
    )
    idempotency_wait: float = Field(
        default=10.0, ge=0, description="seconds a request waits for a running twin"
    )
    command_attempts: int = Field(default=5, ge=1, le=50, description="tries on conflicts")
    state_cache_size: int = Field(default=100_000, ge=0, description="streams kept in memory")
    snapshot_every: int = Field(default=100, ge=1, description="versions between snapshots")
    storage_pool_size: int = Field(
        default=10, ge=1, description="PostgreSQL connections for idempotency and snapshots"
    )
    transfer_manager: bool = Field(
        default=True, description="run the transfer process manager in this process"
    )

    def check_auth(self) -> None:
        """Raise ConfigurationError unless auth has a key or is disabled on purpose."""
        problem = self.auth_problem()
        if problem is not None:
            raise ConfigurationError(problem)
