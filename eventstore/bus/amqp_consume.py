"""Consuming from RabbitMQ: a projection's quorum queue, or the broadcast stream.

A subscription owns one channel on the bus's consumer connection. When the channel or
the connection is lost it opens a new one with back-off and consumes again: a queue
redelivers what was not acknowledged (flagged ``redelivered``), the broadcast resumes
at the offset after the last one delivered.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict, deque
from collections.abc import Callable
from datetime import datetime
from typing import Any

from aio_pika import ExchangeType
from aio_pika.abc import AbstractChannel, AbstractQueue
from aiormq.abc import AbstractChannel as DriverChannel
from aiormq.abc import DeliveredMessage

from eventstore.bus.amqp_link import AmqpLink, opening_channel, translated
from eventstore.bus.api import Delivery, QueueSpec, StreamStart
from eventstore.bus.backoff import Backoff
from eventstore.bus.errors import BusUnavailable, MessageDecodeError
from eventstore.bus.topology import Topology
from eventstore.bus.wire import event_from_json, previous_position_of
from eventstore.model import RecordedEvent

log = logging.getLogger(__name__)

_CLOSED = object()


async def _declare_exchange(channel: AbstractChannel, topology: Topology) -> Any:
    return await channel.declare_exchange(topology.exchange, ExchangeType.TOPIC, durable=True)


class QueueSource:
    """A projection's quorum queue, declared and bound before consuming."""

    broadcast = False

    def __init__(self, topology: Topology, queue: QueueSpec) -> None:
        self._topology = topology
        self._spec = queue

    async def open(self, channel: AbstractChannel) -> tuple[AbstractQueue, dict[str, Any]]:
        exchange = await _declare_exchange(channel, self._topology)
        queue = await channel.declare_queue(
            self._topology.queue_name(self._spec.name),
            durable=True,
            arguments=self._topology.queue_arguments(),
        )
        for key in self._spec.routing_keys:
            await queue.bind(exchange, key)
        return queue, {}

    def delivered(self, offset: int | None) -> None:
        """Queues remember nothing: the broker redelivers what was not acknowledged."""


class BroadcastSource:
    """The broadcast stream, read from ``start`` and, after a reconnect, from the offset
    after the last delivery."""

    broadcast = True

    def __init__(self, topology: Topology, start: StreamStart) -> None:
        if isinstance(start, int) and (isinstance(start, bool) or start < 0):
            raise ValueError(f"invalid broadcast start {start!r}")
        self._topology = topology
        self._start: str | int | datetime = start
        self._resume: int | None = None

    async def open(self, channel: AbstractChannel) -> tuple[AbstractQueue, dict[str, Any]]:
        exchange = await _declare_exchange(channel, self._topology)
        stream = await channel.declare_queue(
            self._topology.broadcast, durable=True, arguments=self._topology.stream_arguments()
        )
        await stream.bind(exchange, "#")
        offset = self._start if self._resume is None else self._resume
        return stream, {"x-stream-offset": offset}

    def delivered(self, offset: int | None) -> None:
        if offset is not None:
            self._resume = offset + 1


class _Channel:
    """One channel's life: the channel that delivers and settles, and its deliveries not
    settled yet by delivery tag (ascending: the order the broker delivered them in).

    A subscription that loses its channel makes a new one; what is still buffered from
    this one is recognised by its driver channel and dropped.
    """

    __slots__ = ("broadcast", "channel", "driver", "sending", "unsettled")

    def __init__(self, channel: AbstractChannel, driver: DriverChannel, broadcast: bool) -> None:
        self.channel = channel
        self.driver = driver
        self.broadcast = broadcast
        self.unsettled: OrderedDict[int, _AmqpDelivery] = OrderedDict()
        self.sending = asyncio.Lock()

    async def settle(self, tag: int, ack: bool, requeue: bool) -> None:
        self.unsettled.pop(tag, None)
        # A broadcast is never requeued: settling only returns credit.
        await self._send(tag, ack=ack or self.broadcast, requeue=requeue)

    async def ack_through(self, tag: int) -> None:
        """Acknowledge every unsettled delivery up to ``tag`` with one multiple ack.

        The frame names the newest tag still unsettled, never one settled already (the
        broker would close the channel on an unknown tag). The record is updated when
        this is called, and the frame takes its turn to be queued in that same step
        (see :meth:`_send`), so frames leave in the order the record changed and a
        later ack never names a tag this one covered.
        """
        unsettled = self.unsettled
        newest = 0
        if unsettled and next(reversed(unsettled)) <= tag:
            # The usual case, acking through the newest delivery: all of them at once.
            newest = next(reversed(unsettled))
            for delivery in unsettled.values():
                delivery.mark_settled()
            unsettled.clear()
        while unsettled and next(iter(unsettled)) <= tag:
            newest, delivery = unsettled.popitem(last=False)
            delivery.mark_settled()
        if newest:
            await self._send(newest, ack=True, requeue=False, multiple=True)

    async def _send(self, tag: int, *, ack: bool, requeue: bool, multiple: bool = False) -> None:
        # One frame at a time, first come first served (taking the lock does not
        # suspend when nobody waits): the driver's frame buffer is a bounded queue,
        # and a frame waiting for room there goes to the back of the line when a newer
        # one takes the freed slot. An ack overtaken by a multiple ack names a tag the
        # broker no longer knows, and it closes the channel.
        async with self.sending:
            try:
                with translated():
                    # wait=False: queued for the socket without a future per frame to
                    # learn when it was written; an ack is best effort either way.
                    if ack:
                        await self.driver.basic_ack(tag, multiple=multiple, wait=False)
                    else:
                        await self.driver.basic_nack(tag, requeue=requeue, wait=False)
            except BusUnavailable as exc:
                # The channel is gone, and with it the broker's record of this
                # delivery: it will be delivered again, and the consumer drops the
                # duplicate by position.
                log.debug("could not settle delivery %d: %s", tag, exc)


class _AmqpDelivery(Delivery):
    """A delivery settled through its channel by tag.

    Made for every message, so it carries its channel and tag instead of a pair of
    closures: :meth:`ack`, :meth:`nack` and :meth:`ack_through` are overridden, which
    is why Delivery's own settle functions are never set.
    """

    __slots__ = ("_channel", "_tag")

    def __init__(
        self,
        event: RecordedEvent,
        previous_position: int,
        channel: _Channel,
        tag: int,
        redelivered: bool,
        offset: int | None,
    ) -> None:
        self.event = event
        self.previous_position = previous_position
        self.redelivered = redelivered
        self.offset = offset
        self._channel = channel
        self._tag = tag
        self._settled = False

    async def ack(self) -> None:
        if not self._settled:
            self._settled = True
            await self._channel.settle(self._tag, True, False)

    async def ack_through(self) -> None:
        await self._channel.ack_through(self._tag)

    async def nack(self, requeue: bool = True) -> None:
        if not self._settled:
            self._settled = True
            await self._channel.settle(self._tag, False, requeue)


class _Inbox:
    """Messages handed from the driver's consumer callback to the iterating task, in
    delivery order. A waiting reader is woken once per burst, not once per message."""

    __slots__ = ("_items", "_waiter")

    def __init__(self) -> None:
        self._items: deque[object] = deque()
        self._waiter: asyncio.Future[None] | None = None

    def put(self, item: object) -> None:
        self._items.append(item)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def take(self) -> object:
        """The next item, or None when there is none yet (then await :meth:`get`)."""
        return self._items.popleft() if self._items else None

    def clear(self) -> None:
        self._items.clear()

    async def get(self) -> object:
        items = self._items
        while not items:
            waiter = self._waiter
            if waiter is None or waiter.done():
                waiter = self._waiter = asyncio.get_running_loop().create_future()
            try:
                await waiter
            finally:
                if self._waiter is waiter:
                    self._waiter = None
        return items.popleft()


class AmqpSubscription:
    """An open consumer of a queue or of the broadcast (see EventBus.consume_*).

    It consumes through the driver's channel (aiormq) rather than aio-pika's queue:
    every delivery is built straight from the driver's message, without aio-pika's
    message object and the task it starts per message.
    """

    def __init__(
        self,
        link: AmqpLink,
        source: QueueSource | BroadcastSource,
        prefetch: int,
        forget: Callable[[AmqpSubscription], None],
        backoff: Backoff | None = None,
    ) -> None:
        if prefetch < 1:
            raise ValueError("prefetch must be at least 1")
        self._link = link
        self._source = source
        self._prefetch = prefetch
        self._forget = forget
        self._backoff = backoff or Backoff()
        # Driver messages, a lost channel's _Channel, or _CLOSED.
        self._inbox = _Inbox()
        self._channel: _Channel | None = None
        self._closed = False
        self._closing = asyncio.Event()

    def __aiter__(self) -> AmqpSubscription:
        return self

    async def __anext__(self) -> Delivery:
        while not self._closed:
            current = self._channel
            if current is None:
                if not await self._attach_with_retry():
                    break
                continue
            item = self._inbox.take() or await self._inbox.get()
            if isinstance(item, DeliveredMessage):
                if item.channel is not current.driver:
                    continue  # buffered from a channel lost before
                delivery = self._delivery(current, item)
                if delivery is not None:
                    return delivery
                # Undecodable: not ours to apply, and requeueing would loop forever.
                await current.settle(_tag(item), ack=False, requeue=False)
            elif item is current:
                log.warning("lost the broker channel of a subscription; reconnecting")
                self._channel = None
        raise StopAsyncIteration

    async def _attach_with_retry(self) -> bool:
        while not self._closed:
            try:
                await self._attach()
            except BusUnavailable as exc:
                log.warning("cannot consume from RabbitMQ yet: %s", exc)
                if not await self._backoff.wait(self._closing):
                    return False
                continue
            self._backoff.reset()
            return True
        return False

    async def _attach(self) -> None:
        connection = await self._link.connection()
        with opening_channel():
            channel = await connection.channel(publisher_confirms=False)
            try:
                await channel.set_qos(prefetch_count=self._prefetch)
                queue, arguments = await self._source.open(channel)
                driver = await channel.get_underlay_channel()
                current = _Channel(channel, driver, self._source.broadcast)
                inbox = self._inbox
                # Whatever is buffered came from a channel that is gone.
                inbox.clear()
                channel.close_callbacks.add(lambda *_: inbox.put(current))

                async def on_message(message: DeliveredMessage) -> None:
                    inbox.put(message)

                await driver.basic_consume(queue.name, on_message, arguments=arguments)
            except BaseException:
                await _close_quietly(channel)
                raise
        self._channel = current

    def _delivery(self, current: _Channel, message: DeliveredMessage) -> Delivery | None:
        """The delivery of ``message``, or None (logged) when it does not decode."""
        properties = message.header.properties
        headers = properties.headers or {}
        try:
            event = event_from_json(message.body)
            previous = previous_position_of(headers)
        except MessageDecodeError as exc:
            log.error("dropping undecodable message %s: %s", properties.message_id, exc)
            return None
        offset: int | None = None
        if current.broadcast:
            found = headers.get("x-stream-offset")
            offset = found if isinstance(found, int) else None
            self._source.delivered(offset)
        # Every message consumed with acknowledgements comes in a Basic.Deliver.
        deliver: Any = message.delivery
        tag: int = deliver.delivery_tag
        delivery = _AmqpDelivery(event, previous, current, tag, deliver.redelivered, offset)
        current.unsettled[tag] = delivery
        return delivery

    async def __aenter__(self) -> AmqpSubscription:
        """Start consuming now (with back-off while the broker is away), so that
        ``start="next"`` means the events published after this returns."""
        if self._channel is None:
            await self._attach_with_retry()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Stop consuming; unsettled queue deliveries go back to the queue."""
        if self._closed:
            return
        self._closed = True
        self._closing.set()
        self._inbox.put(_CLOSED)
        current, self._channel = self._channel, None
        if current is not None:
            await _close_quietly(current.channel)
        self._forget(self)


def _tag(message: DeliveredMessage) -> int:
    tag: int = message.delivery_tag or 0
    return tag


async def _close_quietly(channel: AbstractChannel) -> None:
    try:
        with translated():
            await channel.close()
    except BusUnavailable as exc:
        log.debug("closing a broken channel: %s", exc)
