"""`chronicle serve bridge`: one WebSocket bridge replica on port 8002.

The replica reads the store only to backfill resuming clients and to fill live gaps;
it keeps no state of its own, so any number of replicas run behind a load balancer.
"""

from __future__ import annotations

import asyncio
import logging
import resource
from contextlib import AsyncExitStack

from chronicle.runtime import Resources
from chronicle.supervise import run_together
from eventstore import open_event_store
from eventstore.bus import open_bus
from eventstore.probe import LogProbe
from eventstore.urls import mask_password
from ws_bridge.server import Bridge
from ws_bridge.settings import BridgeSettings

log = logging.getLogger(__name__)


def raise_open_files_limit() -> int:
    """Raise this process's soft limit of open files to its hard limit (one socket per
    client: the default 1024 would cap a replica far below its capacity)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


async def _open(settings: BridgeSettings, stack: AsyncExitStack) -> Resources:
    store = await open_event_store(
        settings.eventstore_url, limits=settings.limits(), pool_size=settings.pool_size
    )
    stack.push_async_callback(store.close)
    bus = open_bus(
        settings.broker_url,
        settings.topology(),
        connect_timeout=settings.broker_connect_timeout,
        name="chronicle bridge",
    )
    stack.push_async_callback(bus.close)
    return Resources(store=store, bus=bus)


async def serve(
    stop: asyncio.Event,
    resources: Resources | None = None,
    settings: BridgeSettings | None = None,
) -> None:
    """Serve the bridge until ``stop`` is set, then close every client with 1012.

    With ``resources`` (``chronicle up``) the store and bus are shared and left open;
    without, they are opened from the settings and closed on the way out. Raises
    ConfigurationError before serving when auth is enabled without a key.
    """
    settings = settings or BridgeSettings()
    settings.check_auth()
    limit = raise_open_files_limit()
    async with AsyncExitStack() as stack:
        shared = resources or await _open(settings, stack)
        bridge = Bridge(settings, shared.store, shared.bus)
        probe = LogProbe(
            shared.store, {"bridge": lambda: bridge.hub.position}, bridge.metrics.registry
        )
        log.info(
            "bridge: %s, %s, auth %s, up to %d open files",
            mask_password(settings.eventstore_url),
            mask_password(settings.broker_url),
            settings.auth,
            limit,
        )
        await run_together(stop, {"bridge": bridge.run, "probe": probe.run})
