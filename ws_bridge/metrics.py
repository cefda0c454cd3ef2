"""The bridge's Prometheus metrics (served at /metrics on the bridge port)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_LAG_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class BridgeMetrics:
    """Counters and gauges of one replica, in a registry of its own."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.connections = Gauge("bridge_connections", "Open client connections", registry=r)
        self.subscriptions = Gauge("bridge_subscriptions", "Active subscriptions", registry=r)
        self.position = Gauge(
            "bridge_live_position", "Position of the last event fanned out", registry=r
        )
        self.events = Counter("bridge_events_total", "Events fanned out", registry=r)
        self.lag = Histogram(
            "bridge_event_lag_seconds",
            "Time from an event's recording to its fan-out by this replica (the relay's,"
            " the broker's and this replica's share of the end-to-end latency)",
            buckets=_LAG_BUCKETS,
            registry=r,
        )
        self.deliveries = Counter(
            "bridge_deliveries_total", "Event frames handed to clients", registry=r
        )
        self.duplicates = Counter(
            "bridge_duplicates_total", "Bus deliveries dropped as already seen", registry=r
        )
        self.gap_repairs = Counter(
            "bridge_gap_repairs_total", "Live gaps filled from the event store", registry=r
        )
        self.backfills = Counter(
            "bridge_backfills_total", "Subscriptions resumed from after_position", registry=r
        )
        self.backfilled = Counter(
            "bridge_backfilled_events_total", "Events sent from the store", registry=r
        )
        self.slow_closes = Counter(
            "bridge_slow_client_closes_total", "Clients closed with 1013", registry=r
        )
        self.bad_frames = Counter("bridge_bad_frames_total", "Malformed client frames", registry=r)
        self.auth_failures = Counter(
            "bridge_auth_failures_total", "Clients refused for auth", registry=r
        )
