"""The WebSocket side of `chronicle load`: a listening client that stamps each message
the moment its bytes arrive, and does nothing else while the load runs.

Ten listeners each receive every event, so at a few hundred events per second the
per-message cost of a full client (its reader task, assembler and queue, a few dozen
microseconds of Python per message on a small machine) becomes most of the
generator's CPU and delays both its own schedule and the stamps. The listener keeps
only what it needs: ``websockets``' sans-I/O :class:`~websockets.client.ClientProtocol`
does the protocol (handshake, framing, masking, pongs, the closing handshake), fed
straight from an :class:`asyncio.Protocol`'s ``data_received``; payloads are kept as
bytes for the caller to decode once the load is over.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from typing import cast

from websockets.client import ClientProtocol
from websockets.exceptions import InvalidState, InvalidURI
from websockets.frames import CloseCode, Frame, Opcode
from websockets.http11 import Response
from websockets.protocol import State
from websockets.uri import parse_uri

CLOSE_TIMEOUT = 2.0
"""Seconds the server has to end the TCP connection once the closing handshake is
done (RFC 6455 7.1.1 leaves that to the server) before the client drops it."""

_DATA = (Opcode.TEXT, Opcode.BINARY, Opcode.CONT)


class WebSocketError(Exception):
    """The server refused the upgrade, or the connection is no longer open."""


class _Receiver(asyncio.Protocol):
    """Feeds the bytes of one connection to ``protocol`` as they arrive and records
    every data message with the time of the read that completed it."""

    def __init__(self, protocol: ClientProtocol) -> None:
        self.protocol = protocol
        self.transport: asyncio.Transport | None = None
        self.messages: list[tuple[float, float, bytes]] = []
        """(``time.perf_counter()``, ``time.time()``, payload) of each data message."""
        self.arrived = asyncio.Event()
        self.closed = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        self._handshake: asyncio.Future[None] = self._loop.create_future()
        self._fragments: list[bytes] = []
        self._close_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream transport (uvloop's do not subclass asyncio.Transport, hence the cast).
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        # Stamped before parsing: the time these bytes reached the process.
        received, wall = time.perf_counter(), time.time()
        self.protocol.receive_data(data)
        self._process(received, wall)

    def eof_received(self) -> None:
        self.protocol.receive_eof()
        self._process(time.perf_counter(), time.time())
        # Returning None lets the transport close itself: nothing is left to write.

    def connection_lost(self, exc: Exception | None) -> None:
        self.protocol.receive_eof()  # idempotent; the protocol's state becomes CLOSED
        if self._close_timer is not None:
            self._close_timer.cancel()
        if not self._handshake.done():
            self._handshake.set_exception(WebSocketError(f"connection lost: {exc!r}"))
        self.transport = None
        self.closed.set()
        self.arrived.set()

    def _process(self, received: float, wall: float) -> None:
        for event in self.protocol.events_received():
            if isinstance(event, Frame):
                self._on_frame(event, received, wall)
            elif isinstance(event, Response):
                self._on_response()
        self.flush()

    def _on_response(self) -> None:
        """Settle the handshake: the protocol has checked the upgrade response."""
        if self._handshake.done():
            return
        refused = self.protocol.handshake_exc
        if refused is None:
            self._handshake.set_result(None)
        else:
            error = WebSocketError(f"upgrade refused: {refused}")
            error.__cause__ = refused
            self._handshake.set_exception(error)

    def _on_frame(self, frame: Frame, received: float, wall: float) -> None:
        # Pings and closes need nothing here: the protocol queued the pong or the
        # close reply, and flush() writes it.
        if frame.opcode not in _DATA:
            return
        self._fragments.append(bytes(frame.data))
        if frame.fin:
            fragments = self._fragments
            payload = fragments[0] if len(fragments) == 1 else b"".join(fragments)
            self._fragments = []
            self.messages.append((received, wall, payload))
            self.arrived.set()

    def flush(self) -> None:
        """Write what the protocol queued; arm the close timer once the protocol
        expects the server to end the TCP connection."""
        transport = self.transport
        if transport is None:
            return
        for data in self.protocol.data_to_send():
            if data:
                transport.write(data)
            elif transport.can_write_eof():
                transport.write_eof()
            else:
                transport.close()  # TLS cannot half-close
        if self.protocol.close_expected() and self._close_timer is None:
            self._close_timer = self._loop.call_later(CLOSE_TIMEOUT, transport.abort)

    async def handshake(self) -> None:
        await self._handshake


class ListeningSocket:
    """A WebSocket client connection that records every data message it receives."""

    def __init__(self, receiver: _Receiver) -> None:
        self._receiver = receiver

    @classmethod
    async def open(cls, url: str, headers: dict[str, str] | None = None) -> ListeningSocket:
        """Connect and upgrade, sending ``headers`` with the upgrade request.

        Raises ValueError for a URL that is not ws(s)://, WebSocketError when the
        server refuses the upgrade, OSError when the connection is refused.
        """
        try:
            uri = parse_uri(url)
        except InvalidURI as exc:
            raise ValueError(f"not a ws(s) URL: {url!r}") from exc
        protocol = ClientProtocol(uri)
        context = ssl.create_default_context() if uri.secure else None
        loop = asyncio.get_running_loop()
        _, receiver = await loop.create_connection(
            lambda: _Receiver(protocol), uri.host, uri.port, ssl=context
        )
        request = protocol.connect()
        request.headers.update(headers or {})
        protocol.send_request(request)
        receiver.flush()
        try:
            await receiver.handshake()
        except WebSocketError:
            if receiver.transport is not None:
                receiver.transport.abort()
            raise
        return cls(receiver)

    @property
    def messages(self) -> list[tuple[float, float, bytes]]:
        """(perf_counter, wall clock, payload) of every data message so far, in order;
        a fragmented message carries the stamp of the read that completed it."""
        return self._receiver.messages

    def send_text(self, text: str) -> None:
        """Send one text message; raises WebSocketError once the connection is closing."""
        try:
            self._receiver.protocol.send_text(text.encode())
        except InvalidState as exc:
            raise WebSocketError(str(exc)) from exc
        self._receiver.flush()

    async def next_message(self, after: int) -> bool:
        """Wait until more than ``after`` messages arrived; False once closed."""
        while len(self._receiver.messages) <= after:
            if self._receiver.closed.is_set():
                return False
            self._receiver.arrived.clear()
            await self._receiver.arrived.wait()
        return True

    async def close(self) -> None:
        """Start the closing handshake (unless the server did) and return once the
        connection is closed: within :data:`CLOSE_TIMEOUT`, or dropped after it."""
        receiver = self._receiver
        if receiver.protocol.state is State.OPEN:
            receiver.protocol.send_close(CloseCode.NORMAL_CLOSURE)
            receiver.flush()
        await receiver.closed.wait()
