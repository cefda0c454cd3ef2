"""How the relay paces itself: one frozen value, made from settings or by tests."""

from __future__ import annotations

from dataclasses import dataclass

from eventstore.leader import Leadership, elected


@dataclass(frozen=True, slots=True)
class RelayConfig:
    """The relay's knobs (see RelaySettings for their meaning and defaults)."""

    name: str = "relay"
    batch_size: int = 500
    max_in_flight: int = 4
    poll_min_delay: float = 0.002
    poll_max_delay: float = 0.025
    checkpoint_interval: float = 0.5
    retry_initial_delay: float = 0.1
    retry_max_delay: float = 5.0
    lock_retry_interval: float = 0.5
    lock_keepalive_interval: float = 1.0

    def __post_init__(self) -> None:
        if not self.name or self.batch_size < 1 or self.max_in_flight < 1:
            raise ValueError("relay needs a name, batch_size >= 1 and max_in_flight >= 1")
        if not 0 < self.poll_min_delay <= self.poll_max_delay:
            raise ValueError("relay needs 0 < poll_min_delay <= poll_max_delay")
        if not 0 < self.retry_initial_delay <= self.retry_max_delay:
            raise ValueError("relay needs 0 < retry_initial_delay <= retry_max_delay")


def leadership_for(database_url: str, config: RelayConfig) -> Leadership:
    """The leader election of the relay group ``config.name``."""
    return elected(
        database_url,
        config.name,
        retry_interval=config.lock_retry_interval,
        keepalive_interval=config.lock_keepalive_interval,
    )
