"""The query API when its read database cannot be reached: 503 problem+json with a
stable code, and /readyz says which dependency failed."""

from __future__ import annotations

from pathlib import Path

import httpx

from eventstore import open_event_store
from projections.api import create_app
from projections.settings import QueriesSettings
from tests.integration.projections.conftest import free_port


async def test_an_unreachable_read_database_is_a_503(tmp_path: Path) -> None:
    store_url = f"sqlite:///{tmp_path / 'store.db'}"
    store = await open_event_store(store_url)
    nowhere = f"postgresql://postgres@127.0.0.1:{free_port()}/chronicle"
    settings = QueriesSettings(eventstore_url=store_url, read_database_url=nowhere)
    app = create_app(settings, store=store)
    transport = httpx.ASGITransport(app, raise_app_exceptions=False)
    try:
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=transport, base_url="http://q") as client,
        ):
            answer = await client.get("/v1/accounts/a1")
            ready = await client.get("/readyz")
            events = await client.get("/v1/events")
    finally:
        await store.close()
    assert answer.status_code == 503
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["code"] == "read_model_unavailable"
    assert ready.status_code == 503
    assert ready.json()["checks"]["eventstore"] == "ok"
    assert ready.json()["checks"]["read_database"] != "ok"
    assert events.status_code == 200  # the log itself is still readable
