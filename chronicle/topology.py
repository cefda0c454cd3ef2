"""The broker half of `chronicle migrate`, and the name of the projector's queue.

Migrate declares what every process relies on: the exchange the relay publishes to and
the broadcast stream the bridges read. A projector declares its own queue when it first
consumes (named after the projections it runs, see ``projections.projector.queue_spec``)
and catches up from the log from its checkpoint, so nothing published before that is
missed; declaring queues nobody consumes would only let them fill up.
"""

from __future__ import annotations

from eventstore.bus import BrokerSettings, QueueSpec, is_amqp, open_bus
from eventstore.urls import mask_password
from projections.projector import queue_specs


def projection_queues() -> list[QueueSpec]:
    """The queue of a projector running every projection of this build."""
    return queue_specs()


async def declare_broker_topology(settings: BrokerSettings | None = None) -> str | None:
    """Declare the exchange and the broadcast when the broker is RabbitMQ (idempotent);
    return what was done, or None for the in-process bus.
    Raises BusUnavailable or TopologyMismatch."""
    settings = settings or BrokerSettings()
    if not is_amqp(settings.broker_url):
        return None
    bus = open_bus(settings.broker_url, settings.topology())
    try:
        await bus.declare()
    finally:
        await bus.close()
    return f"{mask_password(settings.broker_url)}: topology {settings.broker_prefix!r} declared"
