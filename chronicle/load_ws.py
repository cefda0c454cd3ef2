"""The WebSocket side of `chronicle load`: a listening client that stamps each frame
the moment its bytes arrive, and does nothing else while the load runs.

Ten listeners each receive every event, so at a few hundred events per second the
per-frame cost of a general WebSocket client (a few dozen microseconds of Python per
frame on a small machine) becomes most of the generator's CPU and delays both its
own schedule and the stamps. What a listener needs is small: the opening handshake,
one masked text frame out (the subscribe), server frames in (unmasked, RFC 6455
section 5.1), a pong for each ping and a close reply. Frames are parsed straight out
of ``data_received``; their payloads are kept as bytes for the caller to decode later.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import ssl
import struct
import time
from typing import cast
from urllib.parse import urlsplit

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_TEXT, _BINARY, _CLOSE, _PING, _PONG, _CONTINUATION = 0x1, 0x2, 0x8, 0x9, 0xA, 0x0


class WebSocketError(Exception):
    """The server refused the upgrade or broke the protocol."""


def _frame(opcode: int, payload: bytes) -> bytes:
    """One final client frame: masked, as RFC 6455 requires of clients."""
    mask = os.urandom(4)
    length = len(payload)
    if length < 126:
        head = struct.pack("!BB", 0x80 | opcode, 0x80 | length)
    elif length < 1 << 16:
        head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, length)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, length)
    # Only subscribes, pongs and closes go out: a few bytes, so a plain loop will do.
    return head + mask + bytes(byte ^ mask[i % 4] for i, byte in enumerate(payload))


class _Receiver(asyncio.Protocol):
    """Parses server frames as bytes arrive; one stamp per read covers its frames."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.messages: list[tuple[float, float, bytes]] = []
        """(``time.perf_counter()``, ``time.time()``, payload) of each data message."""
        self.arrived = asyncio.Event()
        self.closed = asyncio.Event()
        self._buffer = bytearray()
        self._handshake: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._partial = bytearray()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream transport (uvloop's do not subclass asyncio.Transport, hence the cast).
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        if not self._handshake.done():
            end = self._buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            self._handshake.set_result(bytes(self._buffer[: end + 4]))
            del self._buffer[: end + 4]
        self._parse(time.perf_counter(), time.time())

    def _parse(self, received: float, wall: float) -> None:
        buffer, start = self._buffer, 0
        while len(buffer) - start >= 2:
            first, second = buffer[start], buffer[start + 1]
            length, offset = second & 0x7F, start + 2
            if length == 126:
                if len(buffer) - offset < 2:
                    break
                (length,) = struct.unpack_from("!H", buffer, offset)
                offset += 2
            elif length == 127:
                if len(buffer) - offset < 8:
                    break
                (length,) = struct.unpack_from("!Q", buffer, offset)
                offset += 8
            if second & 0x80 and self.transport is not None:
                # A server must not mask (RFC 6455 5.1): drop the connection, the run
                # then reports this client's events as missing.
                self.transport.abort()
                return
            if len(buffer) - offset < length:
                break
            self._handle(first, bytes(buffer[offset : offset + length]), received, wall)
            start = offset + length
        del buffer[:start]

    def _handle(self, first: int, payload: bytes, received: float, wall: float) -> None:
        opcode, final = first & 0x0F, bool(first & 0x80)
        if opcode in (_TEXT, _BINARY, _CONTINUATION):
            self._partial += payload
            if final:
                self.messages.append((received, wall, bytes(self._partial)))
                self._partial.clear()
                self.arrived.set()
        elif opcode == _PING:
            self.send(_frame(_PONG, payload))
        elif opcode == _CLOSE:
            self.send(_frame(_CLOSE, payload[:2]))
            if self.transport is not None:
                self.transport.close()

    def send(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self._handshake.done():
            self._handshake.set_exception(WebSocketError(f"connection lost: {exc!r}"))
        self.closed.set()
        self.arrived.set()

    async def handshake(self) -> bytes:
        return await self._handshake


class ListeningSocket:
    """A WebSocket client connection that records every data message it receives."""

    def __init__(self, receiver: _Receiver) -> None:
        self._receiver = receiver

    @classmethod
    async def open(cls, url: str, headers: dict[str, str] | None = None) -> ListeningSocket:
        """Connect and upgrade; raises WebSocketError (or OSError) when refused."""
        parts = urlsplit(url)
        if parts.scheme not in ("ws", "wss") or not parts.hostname:
            raise ValueError(f"not a ws(s) URL: {url!r}")
        port = parts.port or (443 if parts.scheme == "wss" else 80)
        context = ssl.create_default_context() if parts.scheme == "wss" else None
        loop = asyncio.get_running_loop()
        _, receiver = await loop.create_connection(_Receiver, parts.hostname, port, ssl=context)
        key = base64.b64encode(os.urandom(16))
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        extra = "".join(f"{name}: {value}\r\n" for name, value in (headers or {}).items())
        assert receiver.transport is not None
        receiver.transport.write(
            (
                f"GET {path} HTTP/1.1\r\nHost: {parts.netloc}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key.decode()}\r\n"
                f"Sec-WebSocket-Version: 13\r\n{extra}\r\n"
            ).encode()
        )
        _check_upgrade(await receiver.handshake(), key)
        return cls(receiver)

    @property
    def messages(self) -> list[tuple[float, float, bytes]]:
        """(perf_counter, wall clock, payload) of every data message so far, in order."""
        return self._receiver.messages

    def send_text(self, text: str) -> None:
        self._receiver.send(_frame(_TEXT, text.encode()))

    async def next_message(self, after: int) -> bool:
        """Wait until more than ``after`` messages arrived; False once closed."""
        while len(self._receiver.messages) <= after:
            if self._receiver.closed.is_set():
                return False
            self._receiver.arrived.clear()
            await self._receiver.arrived.wait()
        return True

    async def close(self) -> None:
        """Send a close frame and wait (briefly) for the server to end the connection."""
        receiver = self._receiver
        receiver.send(_frame(_CLOSE, struct.pack("!H", 1000)))
        try:
            async with asyncio.timeout(2):
                await receiver.closed.wait()
        except TimeoutError:
            if receiver.transport is not None:
                receiver.transport.abort()


def _check_upgrade(head: bytes, key: bytes) -> None:
    status_line, *lines = head.decode("latin-1").split("\r\n")
    if status_line.split(" ", 2)[1:2] != ["101"]:
        raise WebSocketError(f"upgrade refused: {status_line}")
    expected = base64.b64encode(hashlib.sha1(key + _GUID).digest()).decode()  # noqa: S324
    headers = {
        name.strip().lower(): value.strip()
        for name, _, value in (line.partition(":") for line in lines if line)
    }
    if headers.get("sec-websocket-accept") != expected:
        raise WebSocketError("upgrade answered with a wrong Sec-WebSocket-Accept")
