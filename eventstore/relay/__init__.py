"""The relay: tails the event log in commit order and publishes every event to the bus
with publisher confirms, at least once, one active relay per group.

See :class:`eventstore.relay.relay.Relay` and docs/messaging.md.
"""

from eventstore.relay.config import RelayConfig
from eventstore.relay.leader import (
    FileLeadership,
    Leadership,
    PostgresLeadership,
    SoleLeadership,
    elected,
    leadership_for,
)
from eventstore.relay.metrics import RelayMetrics
from eventstore.relay.relay import Relay, RelayStatus
from eventstore.relay.settings import RelaySettings

__all__ = [
    "FileLeadership",
    "Leadership",
    "PostgresLeadership",
    "Relay",
    "RelayConfig",
    "RelayMetrics",
    "RelaySettings",
    "RelayStatus",
    "SoleLeadership",
    "elected",
    "leadership_for",
]
