"""`chronicle serve commands`: the write API (port 8000) and the transfer process manager.

The manager runs in this process, inside the app's lifespan: it shares the state cache
and the per-stream locks with the API, so its steps never race the API's commands on
the same account inside one process, and it needs no deployment of its own (see
docs/commands.md). ``CHRONICLE_TRANSFER_MANAGER=false`` turns it off on replicas.
"""

from __future__ import annotations

import asyncio
import logging

from chronicle.http_server import serve_http
from chronicle.runtime import Resources
from commands.api.app import create_app
from commands.settings import CommandsSettings
from eventstore.urls import mask_password

log = logging.getLogger(__name__)


async def serve(
    stop: asyncio.Event,
    resources: Resources | None = None,
    settings: CommandsSettings | None = None,
) -> None:
    """Serve the command API until ``stop`` is set.

    With ``resources`` (``chronicle up``) the event store is shared and left open;
    without, the app opens its own from the settings. Raises ConfigurationError before
    serving when auth is enabled without a key.
    """
    settings = settings or CommandsSettings()
    app = create_app(settings, store=resources.store if resources else None)
    log.info(
        "commands: %s, http://%s:%d, auth %s, transfer manager %s",
        mask_password(settings.eventstore_url),
        settings.http_host,
        settings.http_port,
        settings.auth,
        "on" if settings.transfer_manager else "off",
    )
    await serve_http(app, settings.http_host, settings.http_port, stop)
