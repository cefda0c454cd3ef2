"""Settings of the relay process (environment, 12-factor)."""

from __future__ import annotations

from pydantic import Field

from eventstore.bus.settings import BrokerSettings
from eventstore.relay.config import RelayConfig


class RelaySettings(BrokerSettings):
    """``CHRONICLE_*`` variables of `chronicle serve relay` (and of the store and bus)."""

    http_port: int = Field(default=8003, ge=0, le=65535, description="health and metrics")
    relay_name: str = Field(
        default="relay", description="checkpoint name and leader lock of this relay group"
    )
    relay_batch_size: int = Field(default=500, ge=1, le=10_000, description="events per read")
    relay_max_in_flight: int = Field(
        default=4, ge=1, le=64, description="batches published and awaiting confirms at once"
    )
    relay_poll_max_delay: float = Field(
        default=0.025, gt=0, description="longest wait between reads of an idle log, seconds"
    )
    # Each checkpoint write is a commit (a WAL flush) competing with the appends; a
    # longer interval only means more events published again after a crash, which
    # every consumer drops by position anyway.
    relay_checkpoint_interval: float = Field(
        default=0.5, ge=0, description="shortest time between checkpoint writes, seconds"
    )
    relay_retry_max_delay: float = Field(
        default=5.0, gt=0, description="longest back-off after a failure, seconds"
    )
    relay_confirm_timeout: float = Field(
        default=30.0, gt=0, description="a publish not confirmed by then counts as failed"
    )
    relay_lock_retry_interval: float = Field(
        default=0.5, gt=0, description="how often a standby tries to take the lead, seconds"
    )

    def relay_config(self) -> RelayConfig:
        return RelayConfig(
            name=self.relay_name,
            batch_size=self.relay_batch_size,
            max_in_flight=self.relay_max_in_flight,
            poll_max_delay=self.relay_poll_max_delay,
            checkpoint_interval=self.relay_checkpoint_interval,
            retry_max_delay=self.relay_retry_max_delay,
            lock_retry_interval=self.relay_lock_retry_interval,
        )
