"""What the ordering design can stall on, sampled for Prometheus.

A follower of the log (the relay, a projection) reads in commit order, and a reader
cannot see past the oldest open write transaction (the read fence, docs/eventstore.md).
So the probe samples, every ``interval`` seconds:

* ``chronicle_log_head_position``: the last position readers can see;
* ``chronicle_log_oldest_write_transaction_seconds``: age of the oldest open write
  transaction, the one holding the fence (an "ordering stall" when it keeps growing);
* ``chronicle_follower_lag_events{follower}``: the head minus each follower's position
  (the relay's last confirmed position, each projection's checkpoint).

Sampling in the background keeps /metrics from touching the database: a scrape never
waits on, nor fails with, the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping

from prometheus_client import CollectorRegistry, Gauge

from eventstore.errors import EventStoreError
from eventstore.store import EventStore

log = logging.getLogger(__name__)

Position = Callable[[], int]
"""Reads a follower's current position (no I/O)."""


class LogProbe:
    """Samples the head, the fence and follower lags of one store (see module docs)."""

    def __init__(
        self,
        store: EventStore,
        followers: Mapping[str, Position],
        registry: CollectorRegistry | None = None,
        *,
        interval: float = 5.0,
    ) -> None:
        self.registry = registry or CollectorRegistry()
        self._store = store
        self._followers = dict(followers)
        self._interval = interval
        r = self.registry
        self.head = Gauge(
            "chronicle_log_head_position", "Last log position readers can see", registry=r
        )
        self.oldest_write = Gauge(
            "chronicle_log_oldest_write_transaction_seconds",
            "Age of the oldest open write transaction (it holds back every log reader)",
            registry=r,
        )
        self.lag = Gauge(
            "chronicle_follower_lag_events",
            "Head position minus the follower's position (positions, not a count of events)",
            ["follower"],
            registry=r,
        )

    async def sample(self) -> None:
        """Take one sample; raises EventStoreError when the store cannot be reached."""
        head = await self._store.head_position()
        age = await self._store.oldest_write_age()
        self.head.set(head)
        self.oldest_write.set(age)
        for name, position in self._followers.items():
            self.lag.labels(name).set(max(0, head - position()))

    async def run(self, stop: asyncio.Event) -> None:
        """Sample until ``stop`` is set; a failed sample is logged and the gauges keep
        their last values (readiness, not this probe, reports an unreachable store)."""
        while not stop.is_set():
            try:
                await self.sample()
            except EventStoreError as exc:
                log.debug("log probe: sample failed: %s", exc)
            except Exception:
                # Metrics must never take the process down; the error is logged and the
                # next sample tries again.
                log.exception("log probe: unexpected error while sampling")
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._interval):
                    await stop.wait()
