"""The RabbitMQ bus (``amqp://``) on aio-pika.

Publishing uses one confirm-mode channel on its own connection (consumers get another
connection, so a publisher held back by flow control never stalls deliveries). Every
message of a call is written at once and the confirms are awaited together; calls that
overlap are written in call order, so a caller may keep several in flight.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractConnection
from pamqp import commands as spec

from eventstore.bus.amqp_consume import AmqpSubscription, BroadcastSource, QueueSource
from eventstore.bus.amqp_link import AmqpLink, opening_channel, translate, translated
from eventstore.bus.api import EventBus, QueueSpec, StreamStart
from eventstore.bus.errors import BusClosed, BusUnavailable
from eventstore.bus.topology import Topology
from eventstore.bus.wire import CONTENT_TYPE, Envelope

log = logging.getLogger(__name__)

_PERSISTENT = 2


async def declare_topology(
    connection: AbstractConnection, topology: Topology, queues: Iterable[QueueSpec] = ()
) -> None:
    """Declare the exchange, the broadcast stream and ``queues`` with their bindings.

    Idempotent. A dedicated channel is used because a declaration that conflicts with
    an existing object closes its channel.
    """
    with translated():
        async with connection.channel(publisher_confirms=False) as channel:
            exchange = await channel.declare_exchange(
                topology.exchange, aio_pika.ExchangeType.TOPIC, durable=True
            )
            stream = await channel.declare_queue(
                topology.broadcast, durable=True, arguments=topology.stream_arguments()
            )
            await stream.bind(exchange, "#")
            for queue_spec in queues:
                queue = await channel.declare_queue(
                    topology.queue_name(queue_spec.name),
                    durable=True,
                    arguments=topology.queue_arguments(),
                )
                for key in queue_spec.routing_keys:
                    await queue.bind(exchange, key)


def _properties(envelope: Envelope) -> spec.Basic.Properties:
    return spec.Basic.Properties(
        content_type=CONTENT_TYPE,
        delivery_mode=_PERSISTENT,
        message_id=envelope.message_id,
        correlation_id=envelope.correlation_id,
        headers=dict(envelope.headers),
        message_type=envelope.event_type,
        timestamp=envelope.recorded_at,
        app_id="chronicle",
    )


@dataclass(eq=False)
class _Target:
    """The publishing channel of one connection, and how many calls use it now."""

    channel: AbstractChannel
    # aiormq's channel: its basic_publish takes ``wait``, which its abstract type lacks.
    underlay: Any
    exchange: str
    in_flight: int = field(default=0)

    @property
    def healthy(self) -> bool:
        return not self.channel.is_closed

    def send(self, envelope: Envelope) -> Awaitable[object]:
        """Publish ``envelope``; the awaitable ends with its confirm. The channel's call
        is returned as it is, without a coroutine of ours around it: one frame less for
        every message."""
        # wait=False: the frame is queued for the socket without waiting for it to be
        # written; the confirm is what we wait for.
        return self.underlay.basic_publish(  # type: ignore[no-any-return]
            envelope.body,
            exchange=self.exchange,
            routing_key=envelope.routing_key,
            properties=_properties(envelope),
            mandatory=False,
            wait=False,
        )


class AmqpBus(EventBus):
    """The bus on RabbitMQ. Connections open on first use and reopen after a loss."""

    def __init__(
        self,
        url: str,
        topology: Topology | None = None,
        *,
        queues: Iterable[QueueSpec] = (),
        connect_timeout: float = 5.0,
        confirm_timeout: float = 30.0,
        name: str = "chronicle",
    ) -> None:
        self.topology = topology or Topology()
        self._queues = tuple(queues)
        self._confirm_timeout = confirm_timeout
        self._publish_link = AmqpLink(url, f"{name} publisher", timeout=connect_timeout)
        self._consume_link = AmqpLink(url, f"{name} consumer", timeout=connect_timeout)
        self._target: _Target | None = None
        self._open_lock = asyncio.Lock()
        self._subscriptions: set[AmqpSubscription] = set()
        self._closed = False

    async def publish(self, messages: Sequence[Envelope]) -> None:
        if not messages:
            return
        target = await self._publishing_target()
        target.in_flight += 1
        try:
            # Every send starts, in order, before the first await below; the channel's
            # lock is first come first served, so overlapping calls keep call order.
            sends = [asyncio.ensure_future(target.send(m)) for m in messages]
            async with asyncio.timeout(self._confirm_timeout):
                results = await asyncio.gather(*sends, return_exceptions=True)
        except TimeoutError as exc:
            await self._drop(target)
            raise BusUnavailable("RabbitMQ did not confirm in time") from exc
        finally:
            target.in_flight -= 1
        failures = [r for r in results if isinstance(r, BaseException)]
        if failures:
            await self._drop(target)
            error = translate(failures[0])
            raise error from failures[0]

    async def _publishing_target(self) -> _Target:
        if self._closed:
            raise BusClosed("the bus is closed")
        # Every call takes its turn here, even when the channel is open: calls that
        # queued while it was opening are let through one per turn of the event loop,
        # and a call that went straight to the open channel meanwhile would overtake
        # them. The lock is first come first served, and taking it costs no suspension
        # when nobody waits, which is the usual case.
        async with self._open_lock:
            target = self._target
            if target is not None and target.healthy:
                return target
            if target is not None and target.in_flight:
                # Earlier calls on the lost channel have not failed yet; publishing on a
                # new one now would overtake them. The caller retries after they fail.
                raise BusUnavailable("the publishing channel was lost")
            self._target = await self._open_target()
            return self._target

    async def _open_target(self) -> _Target:
        connection = await self._publish_link.connection()
        try:
            await declare_topology(connection, self.topology, self._queues)
            with opening_channel():
                channel = await connection.channel(publisher_confirms=True)
                underlay = await channel.get_underlay_channel()
        except BusUnavailable:
            await self._publish_link.reset()
            raise
        return _Target(channel, underlay, self.topology.exchange)

    async def _drop(self, target: _Target) -> None:
        """Forget a failed channel and its connection; the next publish reconnects."""
        if self._target is target:
            self._target = None
            await self._publish_link.reset()

    async def declare(self, queues: Iterable[QueueSpec] = ()) -> None:
        connection = await self._publish_link.connection()
        await declare_topology(connection, self.topology, [*self._queues, *queues])

    def consume_queue(self, queue: QueueSpec, *, prefetch: int = 100) -> AmqpSubscription:
        return self._track(QueueSource(self.topology, queue), prefetch)

    def consume_broadcast(
        self, *, start: StreamStart = "next", prefetch: int = 100
    ) -> AmqpSubscription:
        return self._track(BroadcastSource(self.topology, start), prefetch)

    def _track(self, source: QueueSource | BroadcastSource, prefetch: int) -> AmqpSubscription:
        if self._closed:
            raise BusClosed("the bus is closed")
        subscription = AmqpSubscription(self._consume_link, source, prefetch, self._forget)
        self._subscriptions.add(subscription)
        return subscription

    def _forget(self, subscription: AmqpSubscription) -> None:
        self._subscriptions.discard(subscription)

    async def check(self) -> None:
        if self._closed:
            raise BusClosed("the bus is closed")
        await self._publish_link.connection()

    async def close(self) -> None:
        self._closed = True
        for subscription in list(self._subscriptions):
            await subscription.close()
        self._target = None
        await self._publish_link.close()
        await self._consume_link.close()
