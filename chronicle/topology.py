"""Every projection's queue on the bus, in one list for `chronicle migrate` and the relay
(one line per projection), and the broker half of `chronicle migrate`."""

from __future__ import annotations

from eventstore.bus import BrokerSettings, QueueSpec, is_amqp, open_bus
from eventstore.urls import mask_password
from projections.projector import queue_specs


def projection_queues() -> list[QueueSpec]:
    """The queue of every projection of this build, with the routing keys it needs."""
    return queue_specs()


async def declare_broker_topology(settings: BrokerSettings | None = None) -> str | None:
    """Declare the exchange, the broadcast and every projection queue when the broker is
    RabbitMQ (idempotent); return what was done, or None for the in-process bus.
    Raises BusUnavailable or TopologyMismatch."""
    settings = settings or BrokerSettings()
    if not is_amqp(settings.broker_url):
        return None
    queues = projection_queues()
    bus = open_bus(settings.broker_url, settings.topology(), queues=queues)
    try:
        await bus.declare()
    finally:
        await bus.close()
    return (
        f"{mask_password(settings.broker_url)}: topology {settings.broker_prefix!r} declared"
        f" ({len(queues)} projection queues)"
    )
