"""`chronicle serve relay`: the relay, with health and metrics on its HTTP port (8003).

Readiness: a relay is ready when the event store and the broker answer, whether it
leads or stands by. A standby is a healthy replica ready to take over; counting it
unready would only hide the fact that it could not take over when its dependencies
are down. ``chronicle_relay_active`` in /metrics tells which one leads.
"""

from __future__ import annotations

import asyncio
import logging
from contextlib import AsyncExitStack
from functools import partial

from fastapi import FastAPI

from chronicle.http_server import serve_http
from chronicle.runtime import Resources
from chronicle.supervise import run_together
from eventstore import EventStore, open_event_store
from eventstore.bus import BusError, EventBus, open_bus
from eventstore.metrics import StoreMetricsView
from eventstore.probe import LogProbe
from eventstore.relay import Relay, RelaySettings, leadership_for
from eventstore.urls import mask_password
from eventstore.web import health_router, operations_app

log = logging.getLogger(__name__)


def health_app(relay: Relay, store: EventStore, bus: EventBus) -> FastAPI:
    """/healthz, /readyz (store and broker reachable, relay running) and /metrics."""

    async def relay_running() -> None:
        if relay.status.role == "stopped":
            raise RuntimeError("the relay has stopped")

    app = operations_app("Chronicle relay", relay.metrics.registry)
    checks = {"eventstore": store.ping, "broker": bus.check, "relay": relay_running}
    app.include_router(health_router(checks))
    return app


def observe_log(relay: Relay, store: EventStore) -> LogProbe:
    """The store's append metrics and a probe of the head, the read fence and the
    relay's lag (head minus last confirmed position), in the relay's registry."""
    relay.metrics.registry.register(StoreMetricsView(lambda: store))
    followers = {"relay": lambda: relay.status.confirmed_position}
    return LogProbe(store, followers, relay.metrics.registry)


async def _open(settings: RelaySettings, stack: AsyncExitStack) -> Resources:
    store = await open_event_store(
        settings.eventstore_url, limits=settings.limits(), pool_size=settings.pool_size
    )
    stack.push_async_callback(store.close)
    bus = open_bus(
        settings.broker_url,
        settings.topology(),
        connect_timeout=settings.broker_connect_timeout,
        confirm_timeout=settings.relay_confirm_timeout,
        name=f"chronicle {settings.relay_name}",
    )
    stack.push_async_callback(bus.close)
    return Resources(store=store, bus=bus)


async def _declare(bus: EventBus) -> None:
    """Declare the topology now if the broker answers; publishing declares it again on
    every new connection, so a broker that is down now changes nothing."""
    try:
        await bus.declare()
    except BusError as exc:
        log.warning("relay: could not declare the broker topology yet: %s", exc)


async def serve(
    stop: asyncio.Event,
    resources: Resources | None = None,
    settings: RelaySettings | None = None,
) -> None:
    """Run the relay and its HTTP port until ``stop`` is set.

    With ``resources`` (``chronicle up``) the store and bus are shared and left open;
    without, they are opened from the settings and closed on the way out.
    """
    settings = settings or RelaySettings()
    async with AsyncExitStack() as stack:
        shared = resources or await _open(settings, stack)
        bus: EventBus = shared.bus
        config = settings.relay_config()
        relay = Relay(shared.store, bus, leadership_for(settings.eventstore_url, config), config)
        await _declare(bus)
        log.info(
            "relay %r: %s -> %s, health on http://%s:%d",
            config.name,
            mask_password(settings.eventstore_url),
            mask_password(settings.broker_url),
            settings.http_host,
            settings.http_port,
        )
        app = health_app(relay, shared.store, bus)
        probe = observe_log(relay, shared.store)
        http = partial(serve_http, app, settings.http_host, settings.http_port)
        await run_together(stop, {"relay": relay.run, "relay http": http, "probe": probe.run})
