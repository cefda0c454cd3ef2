"""Running the command API in-process against a real store, for the API tests."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx
import jwt

from commands.api.app import create_app
from commands.settings import CommandsSettings
from commands.write_side import WriteSide
from eventstore import EventStore, RecordedEvent, open_event_store

SECRET = "a-test-secret-that-is-long-enough-for-hs256"


def token(
    sub: str = "alice",
    scope: str | None = "ledger:write",
    *,
    secret: str = SECRET,
    expires_in: float = 300,
    **claims: Any,
) -> str:
    payload: dict[str, Any] = {"sub": sub, "exp": int(time.time() + expires_in), **claims}
    if scope is not None:
        payload["scope"] = scope
    return jwt.encode(payload, secret, algorithm="HS256")


@dataclass
class Api:
    client: httpx.AsyncClient
    store: EventStore
    side: WriteSide

    url: str

    async def log(self) -> list[RecordedEvent]:
        """Every event committed so far, in position order (read from the table, so no
        reader fence can hide a write from the test)."""
        return await committed_events(self.url, self.store)

    async def open(self, account_id: str, owner: str = "Ada", **kw: Any) -> httpx.Response:
        response = await self.client.post(
            "/v1/accounts", json={"account_id": account_id, "owner": owner}, **kw
        )
        assert response.status_code == 201, response.text
        return response

    async def deposit(self, account_id: str, amount: int, **kw: Any) -> httpx.Response:
        return await self.client.post(
            f"/v1/accounts/{account_id}/deposits", json={"amount": amount}, **kw
        )


async def committed_events(url: str, store: EventStore) -> list[RecordedEvent]:
    """Every event in the database, in position order."""
    if not url.startswith("postgresql"):
        return await store.read_all(0, 1_000_000)
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch(
            "SELECT position, event_id, stream_id, version, type, data::text AS data,"
            " metadata::text AS metadata, recorded_at FROM chronicle_events ORDER BY position"
        )
    finally:
        await conn.close()
    return [
        RecordedEvent(
            event_id=row["event_id"],
            stream_id=row["stream_id"],
            version=row["version"],
            position=row["position"],
            type=row["type"],
            data=json.loads(row["data"]),
            metadata=json.loads(row["metadata"]),
            recorded_at=row["recorded_at"],
        )
        for row in rows
    ]


@asynccontextmanager
async def running_api(
    url: str,
    *,
    auth: bool = True,
    store: EventStore | None = None,
    **overrides: Any,
) -> AsyncIterator[Api]:
    """The app over ``url`` (or over ``store``), lifespan running, with a client that
    sends a valid write token when auth is on."""
    settings = CommandsSettings(
        eventstore_url=url,
        auth="enabled" if auth else "disabled",
        jwt_secret=SECRET if auth else None,
        **overrides,
    )
    own = store is None
    opened = store or await open_event_store(url)
    try:
        app = create_app(settings, store=opened)
        headers = {"Authorization": f"Bearer {token()}"} if auth else {}
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(
                transport=transport, base_url="http://commands", headers=headers
            ) as client:
                yield Api(client, opened, app.state.side, url)
    finally:
        if own:
            await opened.close()
