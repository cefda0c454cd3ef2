"""Prometheus metrics of the write side, registered in the registry given."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class WriteSideMetrics:
    """Counters and timings of commands, the state cache and the process manager."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        registry = registry or CollectorRegistry()
        self.registry = registry
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
