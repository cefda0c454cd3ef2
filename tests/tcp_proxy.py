"""A TCP proxy that tests control, to take a service away without touching the service.

Put it between a client and a shared server (RabbitMQ, PostgreSQL…) and point the
client at :attr:`TcpProxy.port`. Then:

* :meth:`pause` stops accepting: new connections are refused, open ones keep working;
* :meth:`drop` closes every open connection at once, both sides (an abort, as when a
  server dies or a network cable is pulled and the OS notices);
* :meth:`outage` is both: the service is gone, as far as the client can tell;
* :meth:`resume` accepts again on the same port (the client can reconnect).

It runs on the test's event loop, so it only forwards while the test awaits; clients
in other processes (subprocesses of the test) work the same way::

    async with TcpProxy("127.0.0.1", 5672) as proxy:
        url = f"amqp://guest:guest@127.0.0.1:{proxy.port}/"
        ...
        await proxy.outage()
        ...
        await proxy.resume()
"""

from __future__ import annotations

import asyncio
import contextlib


class TcpProxy:
    """Forwards ``127.0.0.1:<port>`` to ``target_host:target_port`` (see module docs)."""

    def __init__(self, target_host: str, target_port: int, *, port: int = 0) -> None:
        self.target_host = target_host
        self.target_port = target_port
        self.port = port
        """The listening port (chosen by the OS on the first start when 0)."""
        self.accepted = 0
        """How many client connections were accepted so far."""
        self._server: asyncio.Server | None = None
        self._links: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def accepting(self) -> bool:
        return self._server is not None

    @property
    def open_connections(self) -> int:
        return len(self._links)

    async def start(self) -> TcpProxy:
        """Listen (again) on :attr:`port`; idempotent."""
        if self._server is None:
            self._server = await asyncio.start_server(
                self._accept, "127.0.0.1", self.port, reuse_address=True
            )
            self.port = self._server.sockets[0].getsockname()[1]
        return self

    resume = start

    async def pause(self) -> None:
        """Stop accepting; connections already open are left alone."""
        server, self._server = self._server, None
        if server is not None:
            server.close()

    async def drop(self) -> None:
        """Abort every open connection, on both sides, and wait until they are gone."""
        for writer in list(self._writers):
            writer.transport.abort()
        links = list(self._links)
        for link in links:
            link.cancel()
        await asyncio.gather(*links, return_exceptions=True)

    async def outage(self) -> None:
        """The service disappears: refuse new connections and drop the open ones."""
        await self.pause()
        await self.drop()

    async def close(self) -> None:
        await self.outage()

    async def __aenter__(self) -> TcpProxy:
        return await self.start()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        link = asyncio.current_task()
        assert link is not None
        self._links.add(link)
        try:
            await self._forward(reader, writer)
        except asyncio.CancelledError:
            pass  # dropped by the test; asyncio.start_server must not see it
        finally:
            self._links.discard(link)

    async def _forward(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        upstream_writer: asyncio.StreamWriter | None = None
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(
                self.target_host, self.target_port
            )
            self._writers.add(upstream_writer)
            await asyncio.gather(_pipe(reader, upstream_writer), _pipe(upstream_reader, writer))
        except OSError:
            pass  # the target refused or a side vanished: the link just ends
        finally:
            for end in (writer, upstream_writer):
                if end is not None:
                    self._writers.discard(end)
                    end.transport.abort()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Copy one direction until EOF, then half-close the other side."""
    while data := await reader.read(65536):
        writer.write(data)
        await writer.drain()
    with contextlib.suppress(OSError):
        if writer.can_write_eof():
            writer.write_eof()
