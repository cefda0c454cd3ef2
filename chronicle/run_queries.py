"""`chronicle serve queries`: the query API (port 8001).

CHRONICLE_READ_DATABASE_URL may name a PostgreSQL streaming replica: ``?min_position``
still gives read-your-writes there (see docs/projections.md).
"""

from __future__ import annotations

import asyncio
import logging

from chronicle.http_server import serve_http
from chronicle.runtime import Resources
from eventstore.urls import mask_password
from projections.api import create_app
from projections.settings import QueriesSettings

log = logging.getLogger(__name__)


async def serve(
    stop: asyncio.Event,
    resources: Resources | None = None,
    settings: QueriesSettings | None = None,
) -> None:
    """Serve the query API until ``stop`` is set. With ``resources`` (``chronicle
    up``) the event store is shared and left open."""
    settings = settings or QueriesSettings()
    store = resources.store if resources else None
    memory_key = str(id(resources.store)) if resources else "default"
    app = create_app(settings, store=store, memory_key=memory_key)
    log.info(
        "queries: %s, http://%s:%d",
        mask_password(settings.read_url),
        settings.http_host,
        settings.http_port,
    )
    await serve_http(app, settings.http_host, settings.http_port, stop)
