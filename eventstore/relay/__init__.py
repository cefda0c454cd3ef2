"""The relay: tails the event log in commit order and publishes every event to the bus
with publisher confirms, at least once, one active relay per group.

See :class:`eventstore.relay.relay.Relay` and docs/messaging.md.
"""

from eventstore.leader import Leadership, PostgresLeadership, SoleLeadership
from eventstore.relay.config import RelayConfig, leadership_for
from eventstore.relay.metrics import RelayMetrics
from eventstore.relay.relay import Relay, RelayStatus
from eventstore.relay.settings import RelaySettings

__all__ = [
    "Leadership",
    "PostgresLeadership",
    "Relay",
    "RelayConfig",
    "RelayMetrics",
    "RelaySettings",
    "RelayStatus",
    "SoleLeadership",
    "leadership_for",
]
