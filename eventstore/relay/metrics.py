"""The relay's Prometheus metrics, in a registry of its own (one per relay), so several
relays in one process (tests, `chronicle up`) never collide."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import datetime

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from eventstore.model import RecordedEvent

_LAG_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class RelayMetrics:
    """What the relay reports: progress, role, failures, and append-to-confirm lag."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.published = Counter(
            "chronicle_relay_published_events",
            "Events published and confirmed by the broker (repeats after a failure count).",
            registry=self.registry,
        )
        self.position = Gauge(
            "chronicle_relay_confirmed_position",
            "Position of the last event the broker confirmed.",
            registry=self.registry,
        )
        self.active = Gauge(
            "chronicle_relay_active", "1 while this relay holds the lead.", registry=self.registry
        )
        self.failures = Counter(
            "chronicle_relay_failures",
            "Publishing attempts ended by an error, by kind.",
            ["kind"],
            registry=self.registry,
        )
        self.lag = Histogram(
            "chronicle_relay_lag_seconds",
            "Time from recording to broker confirm, of the last event of each batch.",
            buckets=_LAG_BUCKETS,
            registry=self.registry,
        )
        self.read_lag = Histogram(
            "chronicle_relay_read_lag_seconds",
            "Time from recording to being read by the relay, of every event (the part of"
            " the relay's lag spent waiting for the read fence and the next poll).",
            buckets=_LAG_BUCKETS,
            registry=self.registry,
        )

    def read(self, events: Sequence[RecordedEvent]) -> None:
        now = time.time()
        for event in events:
            self.read_lag.observe(max(0.0, now - event.recorded_at.timestamp()))

    def confirmed(self, count: int, position: int, recorded_at: datetime) -> None:
        self.published.inc(count)
        self.position.set(position)
        self.lag.observe(max(0.0, time.time() - recorded_at.timestamp()))

    def set_active(self, active: bool) -> None:
        self.active.set(1 if active else 0)

    def failed(self, kind: str) -> None:
        self.failures.labels(kind=kind).inc()
