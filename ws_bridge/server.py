"""One bridge replica: the hub, the WebSocket server and its HTTP routes, and shutdown.

On stop (SIGTERM) the replica stops accepting connections and closes every client with
1012 so that they reconnect (elsewhere, through the load balancer) and resume with
``after_position``; what has not closed within the grace period is aborted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from pathlib import Path

from websockets.asyncio.server import Server, ServerConnection, serve

from eventstore.bus.api import EventBus
from eventstore.store import EventStore
from ws_bridge import protocol
from ws_bridge.auth import Authenticator
from ws_bridge.context import BridgeContext
from ws_bridge.fanout import Fanout
from ws_bridge.http import BUNDLED_STATIC, HttpRoutes, load_static
from ws_bridge.hub import Hub
from ws_bridge.metrics import BridgeMetrics
from ws_bridge.session import Session
from ws_bridge.settings import BridgeSettings

log = logging.getLogger(__name__)


class Bridge:
    """A replica over an open store and bus (both owned by the caller)."""

    def __init__(
        self,
        settings: BridgeSettings,
        store: EventStore,
        bus: EventBus,
        metrics: BridgeMetrics | None = None,
    ) -> None:
        settings.check_auth()
        self.settings = settings
        self.metrics = metrics or BridgeMetrics()
        self.fanout = Fanout()
        self.hub = Hub(
            store, bus, self.fanout, self.metrics, page_size=settings.bridge_backfill_page
        )
        self.context = BridgeContext(
            settings, store, self.fanout, self.hub, self.metrics, Authenticator(settings)
        )
        self._bus = bus
        self._store = store
        self.port: int | None = None
        self.listening = asyncio.Event()

    async def run(self, stop: asyncio.Event) -> None:
        """Serve until ``stop`` is set (or the live feed fails, which is raised)."""
        hub_stop = asyncio.Event()
        hub = asyncio.create_task(self.hub.run(hub_stop), name="bridge hub")
        try:
            server = await self._serve()
            try:
                await _first(hub, stop)
            finally:
                await self._drain(server)
        finally:
            hub_stop.set()
            await hub

    async def _serve(self) -> Server:
        settings = self.settings
        server = await serve(
            self._handle,
            settings.http_host,
            settings.http_port,
            process_request=self._routes(),
            compression=None,
            max_size=settings.bridge_max_frame_bytes,
            max_queue=16,
            write_limit=settings.bridge_write_limit,
            ping_interval=settings.bridge_ping_interval,
            ping_timeout=settings.bridge_ping_timeout,
            close_timeout=settings.bridge_close_timeout,
        )
        self.port = server.sockets[0].getsockname()[1]
        self.listening.set()
        log.info("bridge: ws://%s:%d/v1/ws", settings.http_host, self.port)
        return server

    def _routes(self) -> HttpRoutes:
        static = Path(self.settings.bridge_static_dir or BUNDLED_STATIC)
        checks = {"eventstore": self._store.ping, "broker": self._bus.check, "feed": self._fed}
        config = {"queries_url": self.settings.bridge_queries_url, "ws_path": "/v1/ws"}
        return HttpRoutes(checks, self.metrics.registry, load_static(static), config)

    async def _fed(self) -> None:
        if not self.hub.started.is_set():
            raise RuntimeError("the live feed has not started")

    async def _handle(self, ws: ServerConnection) -> None:
        limit_send_buffer(ws, self.settings.bridge_send_buffer)
        await Session(ws, self.context).run()

    async def _drain(self, server: Server) -> None:
        """Stop accepting, close clients with 1012, wait up to the grace period."""
        log.info("bridge: draining %d connections", len(server.connections))
        server.close(close_connections=True, code=protocol.CLOSE_DRAINING, reason="draining")
        try:
            async with asyncio.timeout(self.settings.bridge_shutdown_grace):
                await server.wait_closed()
        except TimeoutError:
            log.warning("bridge: grace period over; aborting the remaining connections")
            for connection in server.connections:
                connection.transport.abort()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(1.0):
                    await server.wait_closed()


def limit_send_buffer(ws: ServerConnection, size: int | None) -> None:
    """Cap the kernel's send buffer of this client's socket (None: kernel autotuning).

    Autotuning lets a client that stopped reading park megabytes in the kernel before
    its queue here fills; a cap bounds memory per client and detects slow ones sooner.
    """
    sock = ws.transport.get_extra_info("socket")
    if size is not None and sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, size)


async def _first(hub: asyncio.Task[None], stop: asyncio.Event) -> None:
    """Return when ``stop`` is set; raise if the live feed ends first."""
    stopper = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait({hub, stopper}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopper.cancel()
    if hub.done() and not stop.is_set():
        hub.result()
        raise RuntimeError("the bridge's live feed ended")
