"""`chronicle serve projector`: every projection's runner, with health and metrics on
its HTTP port (8004).

The projector writes the read models, so CHRONICLE_READ_DATABASE_URL must name the
primary (or the store's database by default), never a replica.
"""

from __future__ import annotations

import asyncio
import logging
from contextlib import AsyncExitStack
from functools import partial

from chronicle.http_server import serve_http
from chronicle.runtime import Resources
from chronicle.supervise import run_together
from eventstore import EventStore, open_event_store
from eventstore.bus import open_bus
from eventstore.probe import LogProbe
from eventstore.urls import mask_password
from projections.db import ensure_schema, open_engine
from projections.health import projector_app
from projections.parking import open_parking_lot
from projections.projection import Projection
from projections.projector import Projector, queue_specs, select_projections
from projections.settings import ProjectorSettings

log = logging.getLogger(__name__)


async def _open(settings: ProjectorSettings, stack: AsyncExitStack) -> Resources:
    store = await open_event_store(
        settings.eventstore_url, limits=settings.limits(), pool_size=settings.pool_size
    )
    stack.push_async_callback(store.close)
    bus = open_bus(
        settings.broker_url,
        settings.topology(),
        queues=queue_specs(),
        connect_timeout=settings.broker_connect_timeout,
        name="chronicle projector",
    )
    stack.push_async_callback(bus.close)
    return Resources(store=store, bus=bus)


async def _projector(
    settings: ProjectorSettings,
    shared: Resources,
    projections: list[Projection],
    stack: AsyncExitStack,
) -> Projector:
    """The projector over its own read database engine (schema applied) and parking lot."""
    engine = open_engine(
        settings.read_url,
        writer=True,
        pool_size=settings.read_pool_size,
        memory_key=str(id(shared.store)),
    )
    stack.push_async_callback(engine.dispose)
    await ensure_schema(settings.read_url, engine)
    parking = open_parking_lot(settings.broker_url, settings.topology())
    stack.push_async_callback(parking.close)
    return Projector(
        projections,
        engine=engine,
        store=shared.store,
        bus=shared.bus,
        parking=parking,
        config=settings.runner_config(),
    )


def observe_log(projector: Projector, store: EventStore) -> LogProbe:
    """A probe of the head, the read fence and each projection's lag (head minus
    checkpoint, ``follower="projection:<name>"``), in the projector's registry."""
    followers = {
        f"projection:{runner.name}": partial(lambda r: r.checkpoint, runner)
        for runner in projector.runners
    }
    return LogProbe(store, followers, projector.metrics.registry)


async def serve(
    stop: asyncio.Event,
    resources: Resources | None = None,
    settings: ProjectorSettings | None = None,
) -> None:
    """Run the projections and the HTTP port until ``stop`` is set.

    With ``resources`` (``chronicle up``) the store and bus are shared and left open.
    Raises UnknownProjection when CHRONICLE_PROJECTOR_PROJECTIONS names one that does
    not exist.
    """
    settings = settings or ProjectorSettings()
    projections = select_projections(settings.selected())
    async with AsyncExitStack() as stack:
        shared = resources or await _open(settings, stack)
        projector = await _projector(settings, shared, projections, stack)
        checks = {
            "read_database": projector.ping_read_database,
            "eventstore": shared.store.ping,
            "broker": shared.bus.check,
        }
        log.info(
            "projector: %s -> %s (%s), health on http://%s:%d",
            mask_password(settings.broker_url),
            mask_password(settings.read_url),
            ", ".join(p.name for p in projections),
            settings.http_host,
            settings.http_port,
        )
        app = projector_app(projector, checks)
        probe = observe_log(projector, shared.store)
        http = partial(serve_http, app, settings.http_host, settings.http_port)
        await run_together(
            stop, {"projector": projector.run, "projector http": http, "probe": probe.run}
        )
