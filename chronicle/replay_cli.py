"""`chronicle replay <projection>`: rebuild a read model from the log with a progress bar
(events/s, ETA), swapping it in only when complete (see projections/replay.py)."""

from __future__ import annotations

import asyncio
import time

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

from eventstore import open_event_store
from projections.db import ensure_schema, open_engine
from projections.projector import select_projections
from projections.replay import Replay, ReplayResult
from projections.settings import ProjectorSettings


class BarProgress:
    """Draws the replay on the terminal. The bar runs over log positions (what is known
    up front: the head); the rate counts events."""

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console(stderr=True)
        self.bar = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TextColumn("{task.fields[events]:>10,} events"),
            TextColumn("{task.fields[rate]:>9,.0f} events/s"),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=self.console,
        )
        self.task = self.bar.add_task("replay", total=1, events=0, rate=0.0, visible=False)
        self.events = 0
        self.start = time.perf_counter()

    def started(self, projection: str, head: int) -> None:
        self.start = time.perf_counter()
        self.bar.start()
        self.bar.update(
            self.task, description=f"replay {projection}", total=max(head, 1), visible=True
        )

    def advanced(self, events: int, position: int) -> None:
        self.events += events
        rate = self.events / max(time.perf_counter() - self.start, 1e-6)
        self.bar.update(self.task, completed=position, events=self.events, rate=rate)

    def swapped(self, position: int) -> None:
        self.bar.update(self.task, completed=self.bar.tasks[0].total)
        self.bar.stop()

    def stop(self) -> None:
        self.bar.stop()


async def replay(name: str, stop: asyncio.Event, batch_size: int) -> ReplayResult:
    """Replay the projection ``name``; raises UnknownProjection, ReplayError."""
    settings = ProjectorSettings()
    (projection,) = select_projections([name])
    store = await open_event_store(settings.eventstore_url, limits=settings.limits(), pool_size=2)
    engine = open_engine(settings.read_url, writer=True, pool_size=2)
    progress = BarProgress()
    try:
        await ensure_schema(settings.read_url, engine)
        job = Replay(projection, engine, store, batch_size=batch_size, progress=progress)
        return await job.run(stop)
    finally:
        progress.stop()
        await engine.dispose()
        await store.close()
