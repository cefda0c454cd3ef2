"""The relay: publishes every committed event to the bus, in commit order, at least once.

Life cycle: stand by until this relay leads its group (see leader.py), then run the
publishing pipeline (pump.py) from the durable checkpoint; after a broker or database
failure, back off and run it again from the last confirmed position; when the lead is
lost, stop publishing at once and stand by again. Nothing is ever skipped: the
checkpoint moves only after the broker confirmed, so a crash at any point means some
events are published again, never that one is lost.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Literal

from eventstore.bus.api import Publisher
from eventstore.bus.backoff import Backoff
from eventstore.bus.errors import BusError, BusUnavailable
from eventstore.errors import EventStoreError, StoreUnavailable
from eventstore.leader import Leadership, while_leading
from eventstore.relay.config import RelayConfig
from eventstore.relay.metrics import RelayMetrics
from eventstore.relay.pump import Pump
from eventstore.store import EventStore

log = logging.getLogger(__name__)

Role = Literal["starting", "standby", "active", "stopped"]

# After stop, in-flight confirms and the last checkpoint get this long to finish.
_DRAIN_SECONDS = 5.0


@dataclass
class RelayStatus:
    """What the relay is doing now, for health endpoints and logs."""

    role: Role = "starting"
    confirmed_position: int = 0
    last_error: str | None = None


class Relay:
    """One member of a relay group (see the module docstring)."""

    def __init__(
        self,
        store: EventStore,
        publisher: Publisher,
        leadership: Leadership,
        config: RelayConfig | None = None,
        metrics: RelayMetrics | None = None,
    ) -> None:
        self._store = store
        self._publisher = publisher
        self._leadership = leadership
        self._config = config or RelayConfig()
        self.metrics = metrics or RelayMetrics()
        self.status = RelayStatus()
        self._backoff = Backoff(self._config.retry_initial_delay, self._config.retry_max_delay)

    async def run(self, stop: asyncio.Event) -> None:
        """Take part in the group until ``stop`` is set; return once drained."""
        try:
            while not stop.is_set():
                self._set_role("standby")
                if not await self._leadership.acquire(stop):
                    break
                log.info("relay %r leads; publishing", self._config.name)
                self._set_role("active")
                try:
                    await self._lead(stop)
                finally:
                    await self._leadership.release()
        finally:
            self._set_role("stopped")

    def _set_role(self, role: Role) -> None:
        self.status.role = role
        self.metrics.set_active(role == "active")

    async def _lead(self, stop: asyncio.Event) -> None:
        """Run pumps, one after another failure, until stop or the lead is lost."""
        lost = self._leadership.lost
        while not stop.is_set() and not lost.is_set():
            try:
                start = max(self.status.confirmed_position, await self._checkpoint())
                pump = Pump(
                    self._store, self._publisher, self._config, self.metrics, start, self._confirmed
                )
                # Cancelled the moment the lead is lost; a bounded drain after stop.
                await while_leading(pump.run(stop), lost, stop=stop, drain=_DRAIN_SECONDS)
            except (BusError, EventStoreError) as exc:
                self._failed(exc)
                if not await self._backoff.wait(stop):
                    return
        if lost.is_set():
            log.error("relay %r lost the lead; standing by", self._config.name)

    async def _checkpoint(self) -> int:
        return await self._store.load_checkpoint(self._config.name)

    def _confirmed(self, position: int) -> None:
        self.status.confirmed_position = position
        self.status.last_error = None
        # Publishing works again: the next failure starts a fresh back-off.
        self._backoff.reset()

    def _failed(self, exc: BusError | EventStoreError) -> None:
        kind = "broker" if isinstance(exc, BusError) else "store"
        self.metrics.failed(kind)
        self.status.last_error = f"{type(exc).__name__}: {exc}"
        if isinstance(exc, BusUnavailable | StoreUnavailable):
            log.warning("relay %r: %s unavailable, retrying: %s", self._config.name, kind, exc)
        else:
            log.error("relay %r: %s error, retrying: %s", self._config.name, kind, exc)
