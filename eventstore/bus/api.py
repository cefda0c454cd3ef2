"""The bus interfaces: publishing (the relay's side) and consuming (workers and bridges).

Two implementations honour them: the in-process bus (``memory://``, embedded mode and
unit tests) and RabbitMQ (``amqp://``); one contract suite in tests runs on both.

Delivery is at least once. A consumer keeps the position it applied last and drops a
delivery whose position is not above it (a duplicate); when ``previous_position`` is
not the position it applied last, it may have missed events and catches up from the
event store, which is the source of truth (see docs/messaging.md).
"""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, Protocol, TypeAlias

from eventstore.bus.topology import Topology
from eventstore.bus.wire import Envelope
from eventstore.model import RecordedEvent

StreamStart: TypeAlias = Literal["first", "last", "next"] | int | datetime
"""Where a broadcast reader starts: the oldest retained event, the last one, the next
one published, a broadcast offset (see :attr:`Delivery.offset`), or the first event
published at or after a time."""

Settle: TypeAlias = Callable[[bool, bool], Awaitable[None]]
"""``settle(ack, requeue)``: how a delivery reports back to the bus that delivered it."""

AckThrough: TypeAlias = Callable[["Delivery"], Awaitable[None]]
"""``ack_through(delivery)``: acknowledge ``delivery`` and every delivery its subscription
handed out before it and not settled yet, marking each of them settled."""


class Publisher(Protocol):
    """The relay's one outbound call. Tests pass a fake that records."""

    async def publish(self, messages: Sequence[Envelope]) -> None:
        """Send ``messages`` in order; return once the broker confirmed every one.

        A call made while earlier calls still await their confirms is sent after them
        (pipelining keeps call order). Raises BusUnavailable (PublishRejected for a
        negative confirm); after a failure any subset of the messages may have
        arrived, so the caller publishes them again.
        """


@dataclass(frozen=True, slots=True)
class QueueSpec:
    """A projection's durable queue: its name and the routing keys it is bound to
    (``<category>.<type>`` patterns, ``*`` = one word, ``#`` = any number of words)."""

    name: str
    routing_keys: tuple[str, ...] = ("#",)

    def __post_init__(self) -> None:
        if not self.name or not self.name.replace("_", "").replace("-", "").isalnum():
            raise ValueError(f"queue name {self.name!r}: letters, digits, '-' and '_' only")
        if not self.routing_keys:
            raise ValueError(f"queue {self.name!r} needs at least one routing key")


class Delivery:
    """One event delivered to a consumer, to be settled once with :meth:`ack` or
    :meth:`nack`. Settling again does nothing.

    Acknowledging is best effort: when the connection that delivered the message is
    gone, the broker delivers it again (to this or another consumer), so a consumer
    acks only after its effect is durable and drops duplicates by position.
    """

    __slots__ = (
        "_settle",
        "_settled",
        "_through",
        "event",
        "offset",
        "previous_position",
        "redelivered",
    )

    def __init__(
        self,
        event: RecordedEvent,
        previous_position: int,
        settle: Settle,
        *,
        redelivered: bool = False,
        offset: int | None = None,
        ack_through: AckThrough | None = None,
    ) -> None:
        self.event = event
        self.previous_position = previous_position
        self.redelivered = redelivered
        self.offset = offset
        """The broadcast offset of this delivery (None for projection queues)."""
        self._settle = settle
        self._through = ack_through
        self._settled = False

    @property
    def position(self) -> int:
        return self.event.position

    @property
    def settled(self) -> bool:
        return self._settled

    async def ack(self) -> None:
        """Done with it: the bus forgets the message (a broadcast just moves on)."""
        if not self._settled:
            self._settled = True
            await self._settle(True, False)

    async def ack_through(self) -> None:
        """Acknowledge this delivery and every one its subscription handed out before
        it that is not settled yet: one frame on RabbitMQ (a multiple ack) instead of
        one per delivery. For consumers that finish deliveries in the order they came;
        the earlier ones count as settled afterwards. A bus without the shortcut
        acknowledges this delivery alone, as :meth:`ack` does (a fake made without an
        ``ack_through`` function)."""
        if self._through is None:
            await self.ack()
        else:
            await self._through(self)

    def mark_settled(self) -> None:
        """For buses: record that this delivery was settled along with a later one (see
        :meth:`ack_through`), so settling it again does nothing."""
        self._settled = True

    async def nack(self, requeue: bool = True) -> None:
        """Not done: with ``requeue`` a projection queue delivers the message again,
        possibly after later ones (a quorum queue returns it to the back); without,
        it is dropped. A broadcast never redelivers."""
        if not self._settled:
            self._settled = True
            await self._settle(False, requeue)

    def __repr__(self) -> str:
        return f"<Delivery position={self.position} previous={self.previous_position}>"


class Subscription(Protocol):
    """An open consumer: iterate for deliveries; close (or leave the ``async with``)
    to stop. Unsettled deliveries go back to the head of their queue, in order, when
    it closes, so the next consumer receives them before anything later."""

    def __aiter__(self) -> AsyncIterator[Delivery]: ...

    async def __anext__(self) -> Delivery: ...

    async def __aenter__(self) -> Subscription: ...

    async def __aexit__(self, *exc_info: object) -> None: ...

    async def close(self) -> None: ...


class EventBus(abc.ABC):
    """A broker attached by URL: publish events, consume them per projection or as a
    broadcast that every bridge replica reads whole."""

    topology: Topology

    @abc.abstractmethod
    async def publish(self, messages: Sequence[Envelope]) -> None:
        """See :meth:`Publisher.publish`."""

    @abc.abstractmethod
    async def declare(self, queues: Iterable[QueueSpec] = ()) -> None:
        """Declare the exchange, the broadcast and ``queues`` (idempotent). Raises
        BusUnavailable, or TopologyMismatch when one exists with other arguments."""

    @abc.abstractmethod
    def consume_queue(self, queue: QueueSpec, *, prefetch: int = 100) -> Subscription:
        """Consume a projection's queue (declared on open if missing).

        At most one subscription of a queue receives at a time (single active
        consumer); others wait and take over when it closes or dies. Deliveries come
        in publish order; at most ``prefetch`` are unsettled at once. A lost broker
        connection is re-established with back-off; unsettled deliveries then come
        again, flagged ``redelivered``.
        """

    @abc.abstractmethod
    def consume_broadcast(
        self, *, start: StreamStart = "next", prefetch: int = 100
    ) -> Subscription:
        """Read every event published, in order, from ``start``; any number of readers
        each get all of them. Acknowledging only returns flow-control credit: after
        ``prefetch`` unsettled deliveries the reader gets no more. Events older than
        the retention are gone; a reader resuming after them sees the gap through
        ``previous_position`` and backfills from the event store."""

    @abc.abstractmethod
    async def check(self) -> None:
        """Return when the broker is reachable now; raise BusUnavailable otherwise
        (BusClosed after :meth:`close`)."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Close every subscription and connection; the bus is unusable afterwards."""

    async def __aenter__(self) -> EventBus:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()
