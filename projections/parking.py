"""Where a poison event's message goes: a dead-letter ("parked") queue per projection.

The message is kept whole (body and headers, plus why and when it was parked), so an
operator can inspect it; the projection halts rather than moving on, and the event
itself stays in the log, so nothing is lost either way. RabbitMQ parks it in the
durable quorum queue ``<prefix>.projection.<name>.parked``; the in-process bus keeps a
list for the life of the process.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractConnection

from eventstore.bus import BusUnavailable, Envelope, Topology, is_amqp


class ParkingLot(Protocol):
    """The one outbound call of a halting projection."""

    async def park(self, projection: str, envelope: Envelope, reason: str) -> None:
        """Keep ``envelope`` aside for ``projection``; raises BusUnavailable on failure."""

    async def close(self) -> None: ...


def parked_queue(topology: Topology, projection: str) -> str:
    return f"{topology.queue_name(projection)}.parked"


@dataclass(frozen=True, slots=True)
class Parked:
    projection: str
    envelope: Envelope
    reason: str
    at: datetime


@dataclass
class MemoryParkingLot:
    """Parked messages in a list (embedded mode, tests)."""

    parked: list[Parked] = field(default_factory=list)

    async def park(self, projection: str, envelope: Envelope, reason: str) -> None:
        self.parked.append(Parked(projection, envelope, reason, datetime.now(UTC)))

    async def close(self) -> None:
        return None


class AmqpParkingLot:
    """Parked messages in a durable quorum queue per projection, on a connection of its
    own (opened on first use: a projector that never halts never opens it)."""

    def __init__(self, url: str, topology: Topology) -> None:
        self._url = url
        self._topology = topology
        self._connection: AbstractConnection | None = None
        self._channel: AbstractChannel | None = None
        self._lock = asyncio.Lock()

    async def park(self, projection: str, envelope: Envelope, reason: str) -> None:
        name = parked_queue(self._topology, projection)
        headers: dict[str, Any] = {
            **envelope.headers,
            "x-parked-reason": reason[:1000],
            "x-parked-at": datetime.now(UTC).isoformat(),
        }
        message = aio_pika.Message(
            envelope.body,
            headers=headers,
            message_id=envelope.message_id,
            content_type="application/json",
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        )
        try:
            # One parker at a time: the channel is opened once and reused.
            async with self._lock:
                channel = await self._open()
                await channel.declare_queue(
                    name, durable=True, arguments={"x-queue-type": "quorum"}
                )
                await channel.default_exchange.publish(message, routing_key=name)
        except (OSError, aio_pika.exceptions.AMQPException) as exc:
            raise BusUnavailable(f"cannot park a message in {name}: {exc}") from exc

    async def _open(self) -> AbstractChannel:
        # A plain connection, reopened here when it was lost: a robust one would keep
        # reconnect callbacks alive past close(), racing the end of the event loop.
        if self._connection is None or self._connection.is_closed:
            self._connection = await aio_pika.connect(self._url, timeout=10)
            self._channel = None
        if self._channel is None or self._channel.is_closed:
            self._channel = await self._connection.channel(publisher_confirms=True)
        return self._channel

    async def close(self) -> None:
        if self._connection is not None:
            await self._connection.close()
            self._connection = None
            self._channel = None


def open_parking_lot(broker_url: str, topology: Topology) -> ParkingLot:
    """The parking lot that matches the bus at ``broker_url``."""
    if is_amqp(broker_url):
        return AmqpParkingLot(broker_url, topology)
    return MemoryParkingLot()
