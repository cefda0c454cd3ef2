"""The bus: how committed events travel from the relay to consumers.

Backends are chosen by URL (:func:`open_bus`): ``memory://`` in-process, ``amqp://``
RabbitMQ. :mod:`eventstore.bus.wire` is the message format every consumer decodes;
docs/messaging.md explains the topology and the delivery guarantees.
"""

from eventstore.bus.api import Delivery, EventBus, Publisher, QueueSpec, StreamStart, Subscription
from eventstore.bus.errors import (
    BusClosed,
    BusError,
    BusUnavailable,
    MessageDecodeError,
    PublishRejected,
    TopologyMismatch,
)
from eventstore.bus.factory import is_amqp, open_bus
from eventstore.bus.settings import BrokerSettings
from eventstore.bus.topology import Topology
from eventstore.bus.wire import Envelope, encode

__all__ = [
    "BrokerSettings",
    "BusClosed",
    "BusError",
    "BusUnavailable",
    "Delivery",
    "Envelope",
    "EventBus",
    "MessageDecodeError",
    "PublishRejected",
    "Publisher",
    "QueueSpec",
    "StreamStart",
    "Subscription",
    "Topology",
    "TopologyMismatch",
    "encode",
    "is_amqp",
    "open_bus",
]
