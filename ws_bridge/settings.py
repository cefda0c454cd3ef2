"""Settings of the bridge process (``CHRONICLE_*`` environment variables).

Made in the composition root (``chronicle serve bridge``, ``chronicle up``), never at
import time.
"""

from __future__ import annotations

from pydantic import Field

from eventstore.bus.settings import BrokerSettings
from eventstore.tokens import TokenSettings
from ws_bridge.errors import ConfigurationError


class BridgeSettings(BrokerSettings, TokenSettings):
    """Everything a bridge replica reads: port, auth, flow control, timeouts."""

    http_port: int = Field(default=8002, ge=0, le=65535)

    jwt_read_scope: str | None = Field(
        default=None, description="scope a client's token must carry, if set"
    )

    bridge_auth_timeout: float = Field(
        default=5.0, gt=0, description="seconds a client has to send its auth frame"
    )
    bridge_queue_size: int = Field(
        default=1000, ge=1, description="frames queued per client before it is closed (1013)"
    )
    bridge_resume_buffer: int = Field(
        default=10_000, ge=1, description="live events held per subscription during a backfill"
    )
    bridge_backfill_page: int = Field(default=500, ge=1, le=10_000, description="events/read")
    bridge_backfill_concurrency: int = Field(
        default=8, ge=1, description="backfills reading the store at once"
    )
    bridge_max_subscriptions: int = Field(default=32, ge=1, description="per connection")
    bridge_max_frame_bytes: int = Field(default=64 * 1024, ge=1024, description="client frames")
    bridge_write_limit: int = Field(
        default=64 * 1024, ge=1024, description="bytes buffered per socket before queueing"
    )
    bridge_send_buffer: int | None = Field(
        default=None, ge=4096, description="kernel send buffer per client socket (unset: auto)"
    )
    bridge_ping_interval: float | None = Field(
        default=20.0, gt=0, description="seconds between keepalive pings (unset: none)"
    )
    bridge_ping_timeout: float | None = Field(
        default=20.0, gt=0, description="seconds to wait for a pong before closing"
    )
    bridge_close_timeout: float = Field(
        default=5.0, gt=0, description="seconds a closing handshake may take"
    )
    bridge_shutdown_grace: float = Field(
        default=10.0, gt=0, description="seconds to close every client on SIGTERM"
    )
    bridge_queries_url: str = Field(
        default="http://127.0.0.1:8001", description="query API the dashboard reads from"
    )
    bridge_static_dir: str | None = Field(
        default=None, description="dashboard files served at / (default: the bundled ones)"
    )

    def check_auth(self) -> None:
        """Raise ConfigurationError unless auth has a key or is disabled on purpose."""
        problem = self.auth_problem()
        if problem is not None:
            raise ConfigurationError(problem)
