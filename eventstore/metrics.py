"""The event store's own Prometheus metrics: appends, their latency and size, conflicts
and idempotent replays, in a registry of their own per store (several stores in one
process, as in tests, never collide). A process serves them beside its own metrics
through a :class:`StoreMetricsView` registered in its registry."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from eventstore import tracing
from eventstore.errors import ConcurrencyError
from eventstore.model import AppendResult

_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5)
_SIZE_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000)


class StoreMetrics:
    """Counters and histograms of one store's appends, labelled by backend."""

    def __init__(self, backend: str, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.latency = Histogram(
            "chronicle_eventstore_append_seconds",
            "Time to append one batch, whatever the outcome",
            ["backend"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        ).labels(backend)
        self.batch = Histogram(
            "chronicle_eventstore_append_batch_events",
            "Events per append call",
            ["backend"],
            buckets=_SIZE_BUCKETS,
            registry=r,
        ).labels(backend)
        self.appended = Counter(
            "chronicle_eventstore_appended_events",
            "Events written (idempotent replays excluded)",
            ["backend"],
            registry=r,
        ).labels(backend)
        self.conflicts = Counter(
            "chronicle_eventstore_concurrency_conflicts",
            "Appends refused because the stream was not at the expected version",
            ["backend"],
            registry=r,
        ).labels(backend)
        self.replays = Counter(
            "chronicle_eventstore_idempotent_replays",
            "Appends whose events were all stored already (nothing written)",
            ["backend"],
            registry=r,
        ).labels(backend)

    async def observe(
        self, count: int, append: Callable[[], Awaitable[AppendResult]]
    ) -> AppendResult:
        """Run ``append`` (inside an ``eventstore.append`` span when tracing is on),
        counting its outcome; its errors pass through."""
        start = time.perf_counter()
        try:
            if tracing.enabled():
                with tracing.span("eventstore.append", {"chronicle.append.events": count}):
                    result = await append()
            else:
                result = await append()
        except ConcurrencyError:
            self.conflicts.inc()
            raise
        finally:
            self.latency.observe(time.perf_counter() - start)
            self.batch.observe(count)
        if result.replayed:
            self.replays.inc()
        else:
            self.appended.inc(len(result.events))
        return result


class StoreMetricsView(Collector):
    """Collects the append metrics of whichever store ``current()`` returns (nothing
    while it returns None, or a store without metrics), live at each scrape."""

    def __init__(self, current: Callable[[], object]) -> None:
        self._current = current

    def collect(self) -> Iterator[Metric]:
        metrics = getattr(self._current(), "metrics", None)
        if isinstance(metrics, StoreMetrics):
            yield from metrics.registry.collect()
