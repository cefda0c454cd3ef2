"""The HTTP side of `chronicle load`: JSON POSTs over a few keep-alive HTTP/1.1
connections, with responses parsed by httptools (llhttp) straight from an
:class:`asyncio.Protocol`.

A general client (httpx) spends on the order of a millisecond of CPU per request on a
small machine; at a few hundred requests per second that alone can keep a load
generator from holding its own schedule, and it then measures itself rather than the
system. The command API needs nothing but a POST with a JSON body: writing one is a
line of formatting, and httptools parses the response (status, keep-alive,
``Content-Length`` or chunked body) in a few microseconds of C.
"""

from __future__ import annotations

import asyncio
import json
import ssl
from collections import deque
from typing import Any, cast
from urllib.parse import urlsplit

import httptools


class HttpError(Exception):
    """A request that got no usable response (connection refused or lost, a response
    this client cannot read), or, from :meth:`HttpPool.post_json` with ``check``,
    a response status of 400 or more."""


class _Connection(asyncio.Protocol):
    """One keep-alive connection; one request at a time. The methods named ``on_*``
    are httptools' parser callbacks."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.lost = asyncio.Event()
        self._parser = httptools.HttpResponseParser(self)
        self._body = bytearray()
        self._keep = False
        self._response: asyncio.Future[tuple[int, bytes, bool]] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream transport (uvloop's do not subclass asyncio.Transport, hence the cast).
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            # The stream cannot be resynchronised: fail the request, drop the connection.
            self._settle(HttpError(f"unreadable response: {exc}"))
            if self.transport is not None:
                self.transport.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self.lost.set()
        self._settle(HttpError(f"connection lost: {exc!r}"))

    def on_headers_complete(self) -> None:
        self._keep = self._parser.should_keep_alive()

    def on_body(self, body: bytes) -> None:
        self._body += body

    def on_message_complete(self) -> None:
        self._settle((self._parser.get_status_code(), bytes(self._body), self._keep))

    def _settle(self, outcome: tuple[int, bytes, bool] | HttpError) -> None:
        """Answer the request in flight, if any (a response nobody asked for is
        dropped; the next request would fail on what follows it anyway)."""
        future, self._response = self._response, None
        if future is None or future.done():
            return
        if isinstance(outcome, HttpError):
            future.set_exception(outcome)
        else:
            future.set_result(outcome)

    async def exchange(self, request: bytes) -> tuple[int, bytes, bool]:
        """Send ``request``; return (status, body, whether the connection stays open).

        Raises HttpError when the connection is lost or the response is unreadable.
        """
        if self.transport is None or self.transport.is_closing():
            raise HttpError("connection closed")
        self._body.clear()
        self._response = asyncio.get_running_loop().create_future()
        self.transport.write(request)
        return await self._response

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


class HttpPool:
    """Up to ``size`` keep-alive connections to ``base_url``; a request takes an idle
    one, opens one more while under ``size``, or waits for one to come back."""

    def __init__(self, base_url: str, headers: dict[str, str], size: int = 32) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {base_url!r}")
        self._host = parts.hostname
        self._port = parts.port or (443 if parts.scheme == "https" else 80)
        self._ssl = ssl.create_default_context() if parts.scheme == "https" else None
        self._root = parts.path.rstrip("/")
        extra = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        self._headers = f"Host: {parts.netloc}\r\n{extra}Content-Type: application/json\r\n"
        self._idle: deque[_Connection] = deque()
        self._returned = asyncio.Condition()
        self._open = 0
        self._size = size

    async def post_json(self, path: str, payload: Any, *, check: bool = True) -> tuple[int, Any]:
        """POST ``payload`` as JSON to ``path``; (status, decoded body or None).

        Raises HttpError when no response could be read, or (with ``check``) when the
        status is 400 or more. A connection that failed is dropped, never reused.
        """
        body = json.dumps(payload, separators=(",", ":")).encode()
        request = (
            f"POST {self._root}{path} HTTP/1.1\r\n{self._headers}"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode() + body
        connection = await self._acquire()
        keep = False
        try:
            status, raw, keep = await connection.exchange(request)
        except HttpError as exc:
            raise HttpError(f"POST {path}: {exc}") from exc
        finally:
            await self._release(connection, keep)
        if check and status >= 400:
            raise HttpError(f"POST {path}: HTTP {status} {raw[:200]!r}")
        return status, json.loads(raw) if raw else None

    async def _acquire(self) -> _Connection:
        async with self._returned:
            while not self._idle and self._open >= self._size:
                await self._returned.wait()
            while self._idle:
                connection = self._idle.pop()
                if connection.transport is not None:
                    return connection
                # The server closed it while idle (its keep-alive timeout).
                self._open -= 1
            # Counted before connecting, so concurrent callers never open too many.
            self._open += 1
        loop = asyncio.get_running_loop()
        try:
            _, connection = await loop.create_connection(
                _Connection, self._host, self._port, ssl=self._ssl
            )
        except OSError as exc:
            await self._release(None, False)
            raise HttpError(f"cannot connect to {self._host}:{self._port}: {exc}") from exc
        return connection

    async def _release(self, connection: _Connection | None, keep: bool) -> None:
        async with self._returned:
            if connection is not None and keep:
                # Most recently used first: a few warm connections carry a light load.
                self._idle.append(connection)
            else:
                self._open -= 1
                if connection is not None:
                    connection.close()
            self._returned.notify()

    async def close(self) -> None:
        """Close every idle connection (call once no request is in flight)."""
        while self._idle:
            connection = self._idle.pop()
            connection.close()
            await connection.lost.wait()
        self._open = 0
