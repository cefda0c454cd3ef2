"""Consuming from RabbitMQ: a projection's quorum queue, or the broadcast stream.

A subscription owns one channel on the bus's consumer connection. When the channel or
the connection is lost it opens a new one with back-off and consumes again: a queue
redelivers what was not acknowledged (flagged ``redelivered``), the broadcast resumes
at the offset after the last one delivered.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Callable
from datetime import datetime
from typing import Any

from aio_pika import ExchangeType
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, AbstractQueue

from eventstore.bus.amqp_link import AmqpLink, opening_channel, translated
from eventstore.bus.api import Delivery, QueueSpec, StreamStart
from eventstore.bus.backoff import Backoff
from eventstore.bus.errors import BusUnavailable, MessageDecodeError
from eventstore.bus.topology import Topology
from eventstore.bus.wire import event_from_json, previous_position_of

log = logging.getLogger(__name__)

_CLOSED = object()

_Unsettled = OrderedDict[int, tuple[Delivery, AbstractIncomingMessage]]
"""One channel's deliveries not settled yet, by delivery tag (ascending: the order the
broker delivered them in)."""


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


class AmqpSubscription:
    """An open consumer of a queue or of the broadcast (see EventBus.consume_*)."""

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
        # Items are (generation, message); a generation is one channel's life, so
        # messages buffered from a lost channel are recognised and dropped.
        self._buffer: asyncio.Queue[tuple[int, object]] = asyncio.Queue()
        self._generation = 0
        self._unsettled: _Unsettled = OrderedDict()
        self._channel: AbstractChannel | None = None
        self._closed = False
        self._closing = asyncio.Event()

    def __aiter__(self) -> AmqpSubscription:
        return self

    async def __anext__(self) -> Delivery:
        while not self._closed:
            if self._channel is None and not await self._attach_with_retry():
                break
            generation, item = await self._buffer.get()
            if generation != self._generation or item is _CLOSED:
                continue
            if item is None:
                log.warning("lost the broker channel of a subscription; reconnecting")
                self._channel = None
                continue
            assert isinstance(item, AbstractIncomingMessage)
            delivery = await self._delivery(item)
            if delivery is not None:
                return delivery
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
                self._generation += 1
                generation = self._generation
                # Delivery tags start again on every channel: a new record of them.
                self._unsettled = OrderedDict()
                channel.close_callbacks.add(lambda *_: self._buffer.put_nowait((generation, None)))

                async def on_message(message: AbstractIncomingMessage) -> None:
                    self._buffer.put_nowait((generation, message))

                await queue.consume(on_message, arguments=arguments)
            except BaseException:
                await _close_quietly(channel)
                raise
        self._channel = channel

    async def _delivery(self, message: AbstractIncomingMessage) -> Delivery | None:
        offset = (message.headers or {}).get("x-stream-offset")
        offset = offset if isinstance(offset, int) else None
        try:
            event = event_from_json(message.body)
            previous = previous_position_of(message.headers)
        except MessageDecodeError as exc:
            # Not ours to apply, and requeueing would loop forever: drop and say so.
            log.error("dropping undecodable message %s: %s", message.message_id, exc)
            await _settle(message, ack=False, requeue=False)
            return None
        self._source.delivered(offset)
        broadcast = self._source.broadcast
        unsettled = self._unsettled
        # Every message consumed with acknowledgements carries a tag.
        tag = message.delivery_tag or 0

        async def settle(ack: bool, requeue: bool) -> None:
            unsettled.pop(tag, None)
            # A broadcast is never requeued: settling only returns credit.
            await _settle(message, ack=ack or broadcast, requeue=requeue)

        async def ack_through(_: Delivery) -> None:
            await _ack_through(unsettled, tag)

        delivery = Delivery(
            event,
            previous,
            settle,
            redelivered=bool(message.redelivered),
            offset=offset,
            ack_through=ack_through,
        )
        unsettled[tag] = (delivery, message)
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
        self._buffer.put_nowait((self._generation, _CLOSED))
        channel, self._channel = self._channel, None
        if channel is not None:
            await _close_quietly(channel)
        self._forget(self)


async def _ack_through(unsettled: _Unsettled, tag: int) -> None:
    """Acknowledge every delivery of ``unsettled`` up to ``tag`` with one multiple ack.

    The frame names the newest tag still unsettled, never one settled already (the
    broker would close the channel on an unknown tag). The record is updated before
    the frame is queued, with no await in between, so frames leave in the order the
    record changed and a later ack never names a tag this one covered.
    """
    newest: AbstractIncomingMessage | None = None
    while unsettled and next(iter(unsettled)) <= tag:
        _, (delivery, newest) = unsettled.popitem(last=False)
        delivery.mark_settled()
    if newest is not None:
        await _settle(newest, ack=True, requeue=False, multiple=True)


async def _settle(
    message: AbstractIncomingMessage, *, ack: bool, requeue: bool, multiple: bool = False
) -> None:
    try:
        with translated():
            if ack:
                await message.ack(multiple=multiple)
            else:
                await message.nack(requeue=requeue)
    except BusUnavailable as exc:
        # The channel is gone, and with it the broker's record of this delivery: it
        # will be delivered again, and the consumer drops the duplicate by position.
        log.debug("could not settle message %s: %s", message.message_id, exc)


async def _close_quietly(channel: AbstractChannel) -> None:
    try:
        with translated():
            await channel.close()
    except BusUnavailable as exc:
        log.debug("closing a broken channel: %s", exc)
