"""The in-process bus (``memory://``): the embedded mode's broker and the unit tests' one.

It keeps the RabbitMQ topology's behaviour that consumers rely on: topic routing to
projection queues declared before the publish, publish order, single active consumer,
prefetch, requeue at the head, a broadcast with offsets and bounded retention. It
keeps nothing across a restart: consumers catch up from the event store when they
start, as they must anyway. It lives on one event loop.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from eventstore.bus.api import Delivery, EventBus, QueueSpec, StreamStart
from eventstore.bus.errors import BusClosed, MessageDecodeError
from eventstore.bus.routing import topic_matches
from eventstore.bus.topology import Topology
from eventstore.bus.wire import Envelope, event_from_json, previous_position_of

log = logging.getLogger(__name__)


class _Wakeup:
    """Wakes every current waiter at once; later waiters wait for the next notify."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def notify(self) -> None:
        event, self._event = self._event, asyncio.Event()
        event.set()

    async def wait(self) -> None:
        await self._event.wait()


@dataclass(frozen=True, slots=True)
class _Item:
    tag: int
    envelope: Envelope
    redelivered: bool = False


def _delivery(item: _Item, reader: _Reader, offset: int | None = None) -> Delivery | None:
    """The delivery of ``item``; None (logged) when it does not decode, as RabbitMQ
    consumers drop such a message rather than loop on it."""
    envelope = item.envelope
    try:
        event = event_from_json(envelope.body)
        previous = previous_position_of(envelope.headers)
    except MessageDecodeError as exc:
        log.error("dropping undecodable message %s: %s", envelope.message_id, exc)
        return None

    async def settle(ack: bool, requeue: bool) -> None:
        reader.settle(item, ack, requeue)

    async def ack_through(_: Delivery) -> None:
        reader.ack_through(item)

    delivery = Delivery(
        event,
        previous,
        settle,
        redelivered=item.redelivered,
        offset=offset,
        ack_through=ack_through,
    )
    reader.handed_out(item, delivery)
    return delivery


class _Reader:
    """What both kinds of subscription share: prefetch accounting and closing."""

    def __init__(self, bus: MemoryBus, wakeup: _Wakeup, prefetch: int) -> None:
        if prefetch < 1:
            raise ValueError("prefetch must be at least 1")
        self._bus = bus
        self._wakeup = wakeup
        self._prefetch = prefetch
        self._unacked: dict[int, _Item] = {}
        # Deliveries handed out and not settled, in the order they were handed out (a
        # requeued message keeps its tag, so tags alone do not tell that order).
        self._handed: dict[int, Delivery] = {}
        self.closed = False

    def handed_out(self, item: _Item, delivery: Delivery) -> None:
        self._handed[item.tag] = delivery

    def settle(self, item: _Item, ack: bool, requeue: bool) -> None:
        self._handed.pop(item.tag, None)
        if self._unacked.pop(item.tag, None) is not None:
            self._on_settled(item, ack, requeue)
            self._wakeup.notify()

    def ack_through(self, item: _Item) -> None:
        """Acknowledge ``item`` and every delivery handed out before it, unsettled."""
        if item.tag not in self._handed:
            return
        for tag in list(self._handed):
            delivery = self._handed.pop(tag)
            delivery.mark_settled()
            earlier = self._unacked.pop(tag, None)
            if earlier is not None:
                self._on_settled(earlier, True, False)
            if tag == item.tag:
                break
        self._wakeup.notify()

    def _on_settled(self, item: _Item, ack: bool, requeue: bool) -> None:
        """Hook: what settling means for this kind of reader."""

    def _take(self) -> Delivery | None:
        """The next delivery if one may be handed out now."""
        raise NotImplementedError

    def __aiter__(self) -> _Reader:
        return self

    async def __anext__(self) -> Delivery:
        while not self.closed:
            if len(self._unacked) < self._prefetch:
                delivery = self._take()
                if delivery is not None:
                    return delivery
            await self._wakeup.wait()
        raise StopAsyncIteration

    async def __aenter__(self) -> _Reader:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._on_close(list(self._unacked.values()))
            self._unacked.clear()
            self._handed.clear()
            self._bus.forget(self)
            self._wakeup.notify()

    def _on_close(self, unacked: list[_Item]) -> None:
        """Hook: what happens to unsettled deliveries."""


class _Queue:
    """A projection queue: ready messages in order, and which reader is active."""

    def __init__(self, spec: QueueSpec) -> None:
        self.bindings = set(spec.routing_keys)
        self.ready: deque[_Item] = deque()
        self.wakeup = _Wakeup()
        self.active: _QueueReader | None = None
        self.waiting: deque[_QueueReader] = deque()
        self._tags = itertools.count(1)

    def routes(self, key: str) -> bool:
        return any(topic_matches(pattern, key) for pattern in self.bindings)

    def put(self, envelope: Envelope) -> None:
        self.ready.append(_Item(next(self._tags), envelope))
        self.wakeup.notify()

    def requeue(self, items: Iterable[_Item]) -> None:
        """Unsettled deliveries of a closed reader: back at the head, oldest first,
        ahead of everything published later (RabbitMQ does the same)."""
        for item in sorted(items, key=lambda i: i.tag, reverse=True):
            self.ready.appendleft(replace(item, redelivered=True))
        self.wakeup.notify()

    def retry(self, item: _Item) -> None:
        """A nacked delivery: to the back, as a RabbitMQ quorum queue returns it."""
        self.ready.append(replace(item, redelivered=True))
        self.wakeup.notify()

    def join(self, reader: _QueueReader) -> None:
        """Single active consumer: the first reader receives, the others wait in line."""
        if self.active is None:
            self.active = reader
        else:
            self.waiting.append(reader)

    def leave(self, reader: _QueueReader) -> None:
        if self.active is reader:
            self.active = self.waiting.popleft() if self.waiting else None
        elif reader in self.waiting:
            self.waiting.remove(reader)


class _QueueReader(_Reader):
    def __init__(self, bus: MemoryBus, queue: _Queue, prefetch: int) -> None:
        super().__init__(bus, queue.wakeup, prefetch)
        self._queue = queue
        queue.join(self)

    def _take(self) -> Delivery | None:
        while self._queue.active is self and self._queue.ready:
            item = self._queue.ready.popleft()
            delivery = _delivery(item, self)
            if delivery is not None:
                self._unacked[item.tag] = item
                return delivery
        return None

    def _on_settled(self, item: _Item, ack: bool, requeue: bool) -> None:
        if not ack and requeue:
            self._queue.retry(item)

    def _on_close(self, unacked: list[_Item]) -> None:
        self._queue.requeue(unacked)
        self._queue.leave(self)


class _Broadcast:
    """The broadcast log: every envelope with its offset, trimmed to ``retain_bytes``."""

    def __init__(self, retain_bytes: int) -> None:
        self.retain_bytes = retain_bytes
        self.entries: deque[tuple[float, _Item]] = deque()
        self.first_offset = 0
        self.next_offset = 0
        self.size = 0
        self.wakeup = _Wakeup()

    def append(self, envelope: Envelope) -> None:
        self.entries.append((time.time(), _Item(self.next_offset, envelope)))
        self.next_offset += 1
        self.size += len(envelope.body)
        while self.size > self.retain_bytes and len(self.entries) > 1:
            _, dropped = self.entries.popleft()
            self.size -= len(dropped.envelope.body)
            self.first_offset += 1
        self.wakeup.notify()

    def start_offset(self, start: StreamStart) -> int:
        if start == "first":
            return self.first_offset
        if start == "last":
            return max(self.first_offset, self.next_offset - 1)
        if start == "next":
            return self.next_offset
        if isinstance(start, datetime):
            since = start.timestamp()
            later = (item.tag for at, item in self.entries if at >= since)
            return next(later, self.next_offset)
        if isinstance(start, int) and not isinstance(start, bool) and start >= 0:
            return start
        raise ValueError(f"invalid broadcast start {start!r}")

    def at(self, offset: int) -> _Item:
        return self.entries[offset - self.first_offset][1]


class _BroadcastReader(_Reader):
    def __init__(self, bus: MemoryBus, log: _Broadcast, start: StreamStart, prefetch: int):
        super().__init__(bus, log.wakeup, prefetch)
        self._log = log
        self._offset = log.start_offset(start)

    def _take(self) -> Delivery | None:
        # A reader left behind by retention skips to the oldest kept event.
        self._offset = max(self._offset, self._log.first_offset)
        while self._offset < self._log.next_offset:
            item = self._log.at(self._offset)
            self._offset += 1
            delivery = _delivery(item, self, offset=item.tag)
            if delivery is not None:
                self._unacked[item.tag] = item
                return delivery
        return None


class MemoryBus(EventBus):
    """The in-process bus. Publishing is synchronous and so "confirmed" at once."""

    def __init__(
        self,
        topology: Topology | None = None,
        *,
        queues: Iterable[QueueSpec] = (),
        retain_bytes: int = 64 << 20,
    ) -> None:
        self.topology = topology or Topology()
        self._queues: dict[str, _Queue] = {}
        self._broadcast = _Broadcast(retain_bytes)
        self._readers: set[_Reader] = set()
        self._closed = False
        for spec in queues:
            self._queue(spec)

    async def publish(self, messages: Sequence[Envelope]) -> None:
        self._check_open()
        for envelope in messages:
            for queue in self._queues.values():
                if queue.routes(envelope.routing_key):
                    queue.put(envelope)
            self._broadcast.append(envelope)

    async def declare(self, queues: Iterable[QueueSpec] = ()) -> None:
        self._check_open()
        for spec in queues:
            self._queue(spec)

    def _queue(self, spec: QueueSpec) -> _Queue:
        queue = self._queues.get(spec.name)
        if queue is None:
            queue = self._queues[spec.name] = _Queue(spec)
        else:
            # Bindings add up, as they do on RabbitMQ; none is removed by a declare.
            queue.bindings.update(spec.routing_keys)
        return queue

    def consume_queue(self, queue: QueueSpec, *, prefetch: int = 100) -> _Reader:
        self._check_open()
        return self._track(_QueueReader(self, self._queue(queue), prefetch))

    def consume_broadcast(self, *, start: StreamStart = "next", prefetch: int = 100) -> _Reader:
        self._check_open()
        return self._track(_BroadcastReader(self, self._broadcast, start, prefetch))

    def _track(self, reader: _Reader) -> _Reader:
        self._readers.add(reader)
        return reader

    def forget(self, reader: _Reader) -> None:
        self._readers.discard(reader)

    async def check(self) -> None:
        self._check_open()

    async def close(self) -> None:
        self._closed = True
        for reader in list(self._readers):
            await reader.close()

    def _check_open(self) -> None:
        if self._closed:
            raise BusClosed("the in-process bus is closed")
