"""One AMQP connection opened on demand, and the translation of driver errors."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from contextlib import contextmanager

import aio_pika
import aiormq
from aio_pika.abc import AbstractConnection

from eventstore.bus.errors import BusUnavailable, PublishRejected, TopologyMismatch
from eventstore.urls import mask_password

log = logging.getLogger(__name__)

_UNAVAILABLE = (
    aiormq.exceptions.AMQPError,
    aiormq.exceptions.ChannelInvalidStateError,
    ConnectionError,
    OSError,
    TimeoutError,
)


def translate(exc: BaseException) -> BaseException:
    """The bus error for a driver error (others are returned unchanged)."""
    if isinstance(exc, asyncio.CancelledError):
        # A publish cancelled by someone else: the driver cancels the confirms still
        # pending when their channel closes.
        return BusUnavailable("the broker channel closed before confirming")
    if isinstance(exc, aiormq.exceptions.ChannelPreconditionFailed):
        return TopologyMismatch(f"broker object exists with other arguments: {exc}")
    if isinstance(exc, aiormq.exceptions.DeliveryError):
        return PublishRejected(f"broker refused a message: {exc}")
    if isinstance(exc, _UNAVAILABLE):
        return BusUnavailable(f"RabbitMQ unavailable: {exc!r}")
    return exc


@contextmanager
def translated() -> Iterator[None]:
    """Raise driver errors as the bus's own (see errors.py)."""
    try:
        yield
    except _UNAVAILABLE as exc:
        raise translate(exc) from exc


@contextmanager
def opening_channel() -> Iterator[None]:
    """Like :func:`translated`, for opening a channel: aio-pika raises RuntimeError
    there when the connection closed under it."""
    try:
        with translated():
            yield
    except RuntimeError as exc:
        raise BusUnavailable(f"RabbitMQ connection lost: {exc}") from exc


class AmqpLink:
    """A connection opened on first use and reopened after it is lost.

    Callers share it: :meth:`connection` returns the open one, or opens a new one
    under a lock, so a crowd of callers after an outage opens one connection, not many.
    """

    def __init__(self, url: str, name: str, *, timeout: float = 5.0) -> None:
        self._url = url
        self._name = name
        self._timeout = timeout
        self._connection: AbstractConnection | None = None
        self._lock = asyncio.Lock()

    @property
    def is_open(self) -> bool:
        conn = self._connection
        return conn is not None and not conn.is_closed and conn.connected.is_set()

    async def connection(self) -> AbstractConnection:
        """The open connection; raises BusUnavailable when the broker is unreachable."""
        if self.is_open:
            assert self._connection is not None
            return self._connection
        # One opener at a time: the others wait and share what it opened.
        async with self._lock:
            if self.is_open:
                assert self._connection is not None
                return self._connection
            await self._discard()
            self._connection = await self._open()
            return self._connection

    async def _open(self) -> AbstractConnection:
        try:
            async with asyncio.timeout(self._timeout):
                return await aio_pika.connect(
                    self._url,
                    timeout=self._timeout,
                    client_properties={"connection_name": self._name},
                )
        except _UNAVAILABLE as exc:
            raise BusUnavailable(
                f"cannot reach RabbitMQ at {mask_password(self._url)}: {exc!r}"
            ) from exc

    async def reset(self) -> None:
        """Drop the connection (after an error); the next caller opens a fresh one."""
        async with self._lock:
            await self._discard()

    async def _discard(self) -> None:
        conn, self._connection = self._connection, None
        if conn is not None:
            try:
                await conn.close()
            except _UNAVAILABLE as exc:
                log.debug("closing a broken AMQP connection: %r", exc)

    async def close(self) -> None:
        await self.reset()
