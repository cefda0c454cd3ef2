"""Prometheus metrics of the write side, registered in the registry given."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class WriteSideMetrics:
    """Counters and timings of commands, the state cache and the process manager."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        registry = registry or CollectorRegistry()
        self.registry = registry
        self._children: dict[tuple[str, str], Any] = {}
        self.commands = Counter(
            "chronicle_commands_total",
            "Commands handled, by command type and outcome",
            ["command", "outcome"],
            registry=registry,
        )
        self.duration = Histogram(
            "chronicle_command_duration_seconds",
            "Time to load, decide and append one command",
            ["command"],
            registry=registry,
        )
        self.conflicts = Counter(
            "chronicle_command_conflicts_total",
            "Appends refused because the stream had moved on (each is retried)",
            registry=registry,
        )
        self.cache = Counter(
            "chronicle_state_cache_total",
            "State loads by source: hit (cached), catch_up, snapshot, replay (full stream)",
            ["source"],
            registry=registry,
        )
        self.transfers = Counter(
            "chronicle_transfers_finished_total",
            "Transfers the process manager drove to an end, by outcome",
            ["outcome"],
            registry=registry,
        )
        self.manager_position = Gauge(
            "chronicle_transfer_manager_position",
            "Last log position the transfer process manager has handled",
            registry=registry,
        )
        self.manager_failures = Gauge(
            "chronicle_transfer_manager_failures",
            "Failures in a row of the transfer manager on its current step (0 once it goes on)",
            registry=registry,
        )
        self.manager_active = Gauge(
            "chronicle_transfer_manager_active",
            "1 while this process's transfer manager leads (drives transfers), else 0",
            registry=registry,
        )

    def command_done(self, command_type: str, outcome: str, seconds: float) -> None:
        """Count one command and its duration (label children are looked up once)."""
        counter = self._children.get((command_type, outcome))
        if counter is None:
            counter = self._children[(command_type, outcome)] = self.commands.labels(
                command_type, outcome
            )
        timer = self._children.get((command_type, ""))
        if timer is None:
            timer = self._children[(command_type, "")] = self.duration.labels(command_type)
        counter.inc()
        timer.observe(seconds)

    def loaded(self, source: str) -> None:
        """Count one state load by source (hit, catch_up, snapshot, replay)."""
        child = self._children.get(("cache", source))
        if child is None:
            child = self._children[("cache", source)] = self.cache.labels(source)
        child.inc()
