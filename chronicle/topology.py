"""The broker half of `chronicle migrate`, and the name of the projector's queue.

Migrate declares what every process relies on: the exchange the relay publishes to and
the broadcast stream the bridges read. A projector declares its own queue when it first
consumes (named after the projections it runs, see ``projections.projector.queue_spec``)
and catches up from the log from its checkpoint, so nothing published before that is
missed; declaring queues nobody consumes would only let them fill up.

An earlier topology had one queue per projection, declared up front. Those are bound to
every event and nothing consumes them any more, so migrate deletes them, unless a
consumer still holds one (a projector of the earlier release still running).
"""

from __future__ import annotations

import aio_pika
import aiormq

from eventstore.bus import BrokerSettings, QueueSpec, Topology, is_amqp, open_bus
from eventstore.bus.amqp_link import translated
from eventstore.urls import mask_password
from projections.bank import bank_projections
from projections.projector import queue_specs


def projection_queues() -> list[QueueSpec]:
    """The queue of a projector running every projection of this build."""
    return queue_specs()


async def declare_broker_topology(settings: BrokerSettings | None = None) -> str | None:
    """Declare the exchange and the broadcast when the broker is RabbitMQ (idempotent)
    and delete the earlier topology's queues; return what was done, or None for the
    in-process bus. Raises BusUnavailable or TopologyMismatch."""
    settings = settings or BrokerSettings()
    if not is_amqp(settings.broker_url):
        return None
    bus = open_bus(settings.broker_url, settings.topology())
    try:
        await bus.declare()
    finally:
        await bus.close()
    deleted, held = await retire_queues_per_projection(settings.broker_url, settings.topology())
    done = f"{mask_password(settings.broker_url)}: topology {settings.broker_prefix!r} declared"
    if deleted:
        done += f"; deleted the earlier queues per projection: {', '.join(deleted)}"
    if held:
        done += f"; still consumed, left in place (delete once unused): {', '.join(held)}"
    return done


async def retire_queues_per_projection(url: str, topology: Topology) -> tuple[list[str], list[str]]:
    """Delete ``<prefix>.projection.<name>`` for every projection that has none of its
    consumers left; return the queues deleted and those left because consumed.

    Deleting loses nothing: the log is the truth, and the projector catches up from its
    checkpoints. (Quorum queues refuse ``if-unused``, hence the passive declare first.)
    """
    deleted: list[str] = []
    held: list[str] = []
    with translated():
        connection = await aio_pika.connect(url)
        async with connection:
            for projection in bank_projections():
                name = topology.queue_name(projection.name)
                channel = await connection.channel()
                try:
                    queue = await channel.declare_queue(name, passive=True)
                except aiormq.exceptions.ChannelNotFoundEntity:
                    continue  # not there: nothing to retire (the channel is closed)
                if queue.declaration_result.consumer_count:
                    held.append(name)
                else:
                    await channel.queue_delete(name)
                    deleted.append(name)
                await channel.close()
    return deleted, held
