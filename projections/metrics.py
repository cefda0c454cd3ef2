"""The projector's Prometheus metrics, one label per projection."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_LAG_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class ProjectorMetrics:
    """What an operator watches: how far each projection got, how late it is, whether
    it halted (and on which event), and how often it retried or caught up."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.checkpoint = Gauge(
            "chronicle_projection_checkpoint", "Position applied", ["projection"], registry=r
        )
        self.applied = Counter(
            "chronicle_projection_events_applied",
            "Events committed to the read model (handled or only checkpointed)",
            ["projection"],
            registry=r,
        )
        self.lag = Histogram(
            "chronicle_projection_lag_seconds",
            "From an event's record time to its read-model commit (live deliveries)",
            ["projection"],
            buckets=_LAG_BUCKETS,
            registry=r,
        )
        self.duplicates = Counter(
            "chronicle_projection_duplicates",
            "Deliveries at or below the checkpoint, acknowledged and skipped",
            ["projection"],
            registry=r,
        )
        self.catch_ups = Counter(
            "chronicle_projection_catch_ups",
            "Catch-ups from the event store (start, gap)",
            ["projection", "reason"],
            registry=r,
        )
        self.retries = Counter(
            "chronicle_projection_retries",
            "Failed commits retried",
            ["projection", "kind"],
            registry=r,
        )
        self.parked = Counter(
            "chronicle_projection_parked", "Messages parked", ["projection"], registry=r
        )
        self.halted = Gauge(
            "chronicle_projection_halted",
            "1 when the projection stopped on a poison event",
            ["projection"],
            registry=r,
        )
        self.halt_info = Gauge(
            "chronicle_projection_halt_info",
            "The event a halted projection stopped on (value 1)",
            ["projection", "event_type", "position", "error"],
            registry=r,
        )
