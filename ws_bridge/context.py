"""What every connection of one replica shares, made once by the server."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from eventstore.store import EventStore
from ws_bridge.auth import Authenticator
from ws_bridge.fanout import Fanout
from ws_bridge.hub import Hub
from ws_bridge.metrics import BridgeMetrics
from ws_bridge.settings import BridgeSettings


@dataclass
class BridgeContext:
    """The replica's settings, store (read-only use), fan-out, hub and metrics."""

    settings: BridgeSettings
    store: EventStore
    fanout: Fanout
    hub: Hub
    metrics: BridgeMetrics
    authenticator: Authenticator
    backfills: asyncio.Semaphore = field(init=False)

    def __post_init__(self) -> None:
        # Bounds the store reads of clients resuming at once (a replica's restart
        # sends all its clients to the others with after_position).
        self.backfills = asyncio.Semaphore(self.settings.bridge_backfill_concurrency)
