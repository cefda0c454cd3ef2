"""Open the bus named by a URL: the one place that chooses a broker."""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlsplit

from eventstore.bus.amqp import AmqpBus
from eventstore.bus.api import EventBus, QueueSpec
from eventstore.bus.memory import MemoryBus
from eventstore.bus.topology import Topology
from eventstore.urls import UnsupportedUrl, mask_password


def is_amqp(url: str) -> bool:
    return urlsplit(url).scheme in ("amqp", "amqps")


def open_bus(
    url: str,
    topology: Topology | None = None,
    *,
    queues: Iterable[QueueSpec] = (),
    connect_timeout: float = 5.0,
    confirm_timeout: float = 30.0,
    name: str = "chronicle",
) -> EventBus:
    """``memory://`` (in-process) or ``amqp://…`` / ``amqps://…`` (RabbitMQ).

    Nothing connects here: RabbitMQ connections open on first use, so a broker that is
    down now only makes calls raise BusUnavailable until it is back. ``queues`` are the
    projection queues declared, with the exchange and the broadcast, whenever a
    publishing connection opens.
    """
    scheme = urlsplit(url).scheme
    if scheme == "memory":
        return MemoryBus(topology, queues=queues)
    if is_amqp(url):
        return AmqpBus(
            url,
            topology,
            queues=queues,
            connect_timeout=connect_timeout,
            confirm_timeout=confirm_timeout,
            name=name,
        )
    raise UnsupportedUrl(f"unsupported broker URL {mask_password(url)!r}")
