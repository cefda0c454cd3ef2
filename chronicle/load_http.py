"""The HTTP side of `chronicle load`: JSON POSTs over a few keep-alive HTTP/1.1
connections, written straight on asyncio streams.

A general client (httpx) spends on the order of a millisecond of CPU per request on a
small machine; at a few hundred requests per second that alone can keep a load
generator from holding its own schedule, and it then measures itself rather than the
system. The command API needs nothing but a POST with a JSON body and a response with
a ``Content-Length``, which takes a few dozen microseconds to write and parse by hand.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
from collections import deque
from typing import Any
from urllib.parse import urlsplit


class HttpError(Exception):
    """A request that got no usable response (connection refused or lost, a response
    this client cannot read), or, from :meth:`HttpPool.post_json` with ``check``,
    a response status of 400 or more."""


class _Connection:
    """One keep-alive connection; one request at a time."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    async def exchange(self, request: bytes) -> tuple[int, bytes, bool]:
        """Send ``request``; return (status, body, whether the connection stays open)."""
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status_line, *lines = head[:-4].split(b"\r\n")
        status = int(status_line.split(b" ", 2)[1])
        length, keep = 0, True
        for line in lines:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"connection":
                keep = value.strip().lower() != b"close"
            elif name == b"transfer-encoding":
                raise HttpError("chunked responses are not supported by the load client")
        body = await self.reader.readexactly(length) if length else b""
        return status, body, keep

    def close(self) -> None:
        self.writer.close()


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
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as exc:
            raise HttpError(f"POST {path}: {exc!r}") from exc
        finally:
            await self._release(connection, keep)
        if check and status >= 400:
            raise HttpError(f"POST {path}: HTTP {status} {raw[:200]!r}")
        return status, json.loads(raw) if raw else None

    async def _acquire(self) -> _Connection:
        async with self._returned:
            while not self._idle and self._open >= self._size:
                await self._returned.wait()
            if self._idle:
                return self._idle.pop()
            # Counted before connecting, so concurrent callers never open too many.
            self._open += 1
        try:
            reader, writer = await asyncio.open_connection(self._host, self._port, ssl=self._ssl)
        except OSError as exc:
            await self._release(None, False)
            raise HttpError(f"cannot connect to {self._host}:{self._port}: {exc}") from exc
        return _Connection(reader, writer)

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
            with contextlib.suppress(OSError):
                await connection.writer.wait_closed()
        self._open = 0
