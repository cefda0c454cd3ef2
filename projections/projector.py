"""The projector: every projection's runner in one process, and its health endpoints.

Each runner keeps going on its own: a poison event halts its projection only, and
/readyz then answers 503 naming the projection, the event and the error, while the
other projections go on building (see docs/projections.md).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from eventstore import EventStore
from eventstore.bus import EventBus, QueueSpec
from projections.apply import Applier
from projections.bank import bank_projections
from projections.collector import older_objects_frozen
from projections.errors import UnknownProjection
from projections.metrics import ProjectorMetrics
from projections.parking import ParkingLot
from projections.projection import Projection
from projections.runner import CommitObserver, ProjectionRunner, RunnerConfig

ALL_EVENTS = ("#",)
"""Every projection queue is bound to every event, so ``previous_position`` of each
delivery is the event before it in the log, and a gap is detected exactly."""


def queue_specs(projections: Iterable[Projection] | None = None) -> list[QueueSpec]:
    """The broker queue of each projection."""
    chosen = bank_projections() if projections is None else projections
    return [QueueSpec(p.name, ALL_EVENTS) for p in chosen]


def select_projections(names: Sequence[str] = ()) -> list[Projection]:
    """The projections named (all when empty); raises UnknownProjection."""
    available = {p.name: p for p in bank_projections()}
    for name in names:
        if name not in available:
            known = ", ".join(available)
            raise UnknownProjection(f"no projection named {name!r} (known: {known})")
    return [available[name] for name in names] if names else list(available.values())


class Projector:
    """The runners of a set of projections over one store, bus and read database."""

    def __init__(
        self,
        projections: Sequence[Projection],
        *,
        engine: AsyncEngine,
        store: EventStore,
        bus: EventBus,
        parking: ParkingLot,
        metrics: ProjectorMetrics | None = None,
        config: RunnerConfig | None = None,
        observer: CommitObserver | None = None,
    ) -> None:
        self.engine = engine
        self.store = store
        self.bus = bus
        self.metrics = metrics or ProjectorMetrics()
        self.runners = [
            ProjectionRunner(
                Applier(p, engine),
                store,
                bus,
                QueueSpec(p.name, ALL_EVENTS),
                parking,
                self.metrics,
                config,
                observer,
            )
            for p in projections
        ]

    def runner(self, name: str) -> ProjectionRunner:
        for runner in self.runners:
            if runner.name == name:
                return runner
        raise UnknownProjection(name)

    async def run(self, stop: asyncio.Event) -> None:
        """Run every projection until ``stop`` is set. A runner that fails with an
        unexpected error (a bug, not a poison event) fails the whole projector, so the
        process restarts rather than serving half of its projections unnoticed.

        While it runs, the objects made before it are left out of cyclic garbage
        collection (see :mod:`projections.collector`)."""
        with older_objects_frozen():
            async with asyncio.TaskGroup() as group:
                for runner in self.runners:
                    group.create_task(runner.run(stop), name=f"projection {runner.name}")

    async def ping_read_database(self) -> None:
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    def report(self) -> dict[str, dict[str, object]]:
        return {
            r.name: {
                "state": r.status.state,
                "checkpoint": r.status.checkpoint,
                "reason": r.status.reason,
            }
            for r in self.runners
        }
