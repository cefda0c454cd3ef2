"""The query API over the embedded backends: DESIGN.md's routes, min_position,
X-Projection-Position, cursors, problem+json, CORS, health and OpenAPI."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiosqlite
import httpx
import pytest
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from commands.events import (
    AccountOpened,
    MoneyDeposited,
    TransferRequested,
    account_stream,
    transfer_stream,
)
from eventstore import EventStore, NewEvent, RecordedEvent, open_event_store
from projections.api import create_app
from projections.bank import AccountSummaryProjection
from projections.db import open_engine
from projections.settings import QueriesSettings
from projections.testing import ProjectionTestbed
from tests.unit.projections.conftest import World


@pytest.fixture
async def client(world: World) -> AsyncIterator[httpx.AsyncClient]:
    settings = QueriesSettings(eventstore_url=world.url, min_position_timeout=0.3)
    app = create_app(settings, engine=world.engine, store=world.store)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app)
        async with httpx.AsyncClient(transport=transport, base_url="http://q") as c:
            yield c


async def test_min_position_waits_for_the_write_then_answers(
    world: World, client: httpx.AsyncClient
) -> None:
    projector = world.projector()
    await world.start(projector)
    await world.write(account_stream("a1"), AccountOpened(account_id="a1", owner="Ada"))
    # The API is asked first; the event is published while it waits.
    appended = await world.append(account_stream("a1"), MoneyDeposited(account_id="a1", amount=9))
    position = appended[-1].position
    asking = asyncio.create_task(client.get(f"/v1/accounts/a1?min_position={position}"))
    await asyncio.sleep(0)
    await world.publish(appended)
    response = await asking
    assert response.status_code == 200
    assert response.json()["balance"] == 9
    assert int(response.headers["X-Projection-Position"]) >= position
    assert "X-Projection-Stale" not in response.headers


async def test_min_position_out_of_reach_answers_stale_after_the_bound(
    world: World, client: httpx.AsyncClient
) -> None:
    started = time.monotonic()
    response = await client.get("/v1/accounts?min_position=999999")
    assert response.status_code == 200
    assert response.headers["X-Projection-Stale"] == "true"
    assert response.headers["X-Projection-Position"] == "0"
    assert 0.25 < time.monotonic() - started < 5


async def test_accounts_are_paged_with_an_opaque_cursor(
    world: World, client: httpx.AsyncClient
) -> None:
    projector = world.projector()
    await world.start(projector)
    for i in range(5):
        last = await world.write(
            account_stream(f"c{i}"), AccountOpened(account_id=f"c{i}", owner=f"O{i}")
        )
    seen: list[str] = []
    cursor = None
    for _ in range(4):
        query = f"/v1/accounts?limit=2&min_position={last[-1].position}"
        page = (await client.get(query + (f"&cursor={cursor}" if cursor else ""))).json()
        seen += [item["account_id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [f"c{i}" for i in range(5)]
    bad = await client.get("/v1/accounts?cursor=bm90LWEtY3Vyc29y")
    assert bad.status_code == 400
    assert bad.headers["content-type"] == "application/problem+json"
    assert bad.json()["code"] == "invalid_cursor"


async def test_transactions_newest_first_and_transfer_and_stats(
    world: World, client: httpx.AsyncClient
) -> None:
    projector = world.projector()
    await world.start(projector)
    await world.write(account_stream("s1"), AccountOpened(account_id="s1", owner="Ada"))
    for amount in (1, 2, 3):
        await world.write(account_stream("s1"), MoneyDeposited(account_id="s1", amount=amount))
    last = await world.write(
        transfer_stream("t1"),
        TransferRequested(transfer_id="t1", from_account="s1", to_account="s2", amount=1),
    )
    wait = f"min_position={last[-1].position}"
    first = (await client.get(f"/v1/accounts/s1/transactions?limit=2&{wait}")).json()
    assert [line["amount"] for line in first["items"]] == [3, 2]
    rest = await client.get(f"/v1/accounts/s1/transactions?cursor={first['next_cursor']}")
    assert [line["balance_after"] for line in rest.json()["items"]] == [1]
    transfer = (await client.get(f"/v1/transfers/t1?{wait}")).json()
    assert transfer["status"] == "requested"
    assert transfer["steps"][0]["step"] == "requested"
    stats = (await client.get(f"/v1/stats?{wait}")).json()
    assert (stats["accounts"], stats["total_balance"], stats["deposits"]) == (1, 6, 3)
    assert sum(m["movements"] for m in stats["movements_per_minute"]) == 3


async def test_unknown_ids_are_problem_json_404_with_the_position(
    client: httpx.AsyncClient,
) -> None:
    for path, code in (
        ("/v1/accounts/nobody", "account_not_found"),
        ("/v1/transfers/none", "transfer_not_found"),
    ):
        response = await client.get(path)
        assert response.status_code == 404
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["code"] == code
        assert "X-Projection-Position" in response.headers
    assert (await client.get("/v1/accounts?limit=0")).status_code == 422


async def test_the_raw_log_is_read_in_commit_order(world: World, client: httpx.AsyncClient) -> None:
    records = []
    for i in range(3):
        records += await world.append(
            account_stream(f"e{i}"), AccountOpened(account_id=f"e{i}", owner="X")
        )
    page = (await client.get("/v1/events?limit=2")).json()
    assert [e["position"] for e in page["events"]] == [r.position for r in records[:2]]
    rest = (await client.get(f"/v1/events?after={page['next_after']}")).json()
    assert [e["stream_id"] for e in rest["events"]] == ["account-e2"]
    assert rest["head_position"] == records[-1].position
    assert (await client.post("/v1/events")).status_code == 405


async def test_cors_allows_the_dashboard_origin_to_get(client: httpx.AsyncClient) -> None:
    origin = "http://127.0.0.1:8002"
    response = await client.get("/v1/stats", headers={"Origin": origin})
    assert response.headers["access-control-allow-origin"] == origin
    assert "X-Projection-Position" in response.headers["access-control-expose-headers"]
    other = await client.get("/v1/stats", headers={"Origin": "http://evil.example"})
    assert "access-control-allow-origin" not in other.headers


async def test_health_readiness_metrics_and_openapi(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).status_code == 200
    ready = await client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"read_database": "ok", "eventstore": "ok"}
    assert "http_requests_total" in (await client.get("/metrics")).text
    paths = (await client.get("/openapi.json")).json()["paths"]
    assert {"/v1/accounts/{account_id}", "/v1/accounts", "/v1/stats", "/v1/events"} <= set(paths)
    assert "/v1/accounts/{account_id}/transactions" in paths
    assert "/v1/transfers/{transfer_id}" in paths


async def test_readiness_fails_when_the_read_database_is_gone(
    world: World, client: httpx.AsyncClient
) -> None:
    broken = QueriesSettings(
        eventstore_url=world.url, read_database_url="sqlite:////nonexistent/x.db"
    )
    app = create_app(broken, store=world.store)
    transport = httpx.ASGITransport(app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://q") as c,
    ):
        ready = await c.get("/readyz")
    assert ready.status_code == 503
    assert ready.json()["code"] == "not_ready"


async def test_min_position_answers_from_a_database_that_has_it_across_replicas(
    tmp_path: Path,
) -> None:
    # Two streaming replicas behind one service, one of them behind: the pool's new
    # connections go to each in turn (two SQLite files stand for them).
    ahead, behind = tmp_path / "ahead.db", tmp_path / "behind.db"
    opened = AccountOpened(account_id="a1", owner="Ada")
    async with ProjectionTestbed(AccountSummaryProjection(), f"sqlite:///{ahead}") as bed:
        await bed.feed(account_stream("a1"), opened)
        written = await bed.feed(account_stream("a1"), MoneyDeposited(account_id="a1", amount=500))
    async with ProjectionTestbed(AccountSummaryProjection(), f"sqlite:///{behind}") as bed:
        await bed.feed(account_stream("a1"), opened)
    replicas = itertools.cycle([str(ahead), str(behind)])
    engine = create_async_engine(
        "sqlite+aiosqlite://",
        poolclass=NullPool,
        async_creator=lambda: aiosqlite.connect(next(replicas)),
    )
    store = await open_event_store("sqlite://:memory:")
    settings = QueriesSettings(eventstore_url="sqlite://:memory:", min_position_timeout=2)
    app = create_app(settings, engine=engine, store=store)
    try:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app)
            async with httpx.AsyncClient(transport=transport, base_url="http://q") as client:
                for _ in range(4):
                    response = await client.get(f"/v1/accounts/a1?min_position={written}")
                    assert response.status_code == 200
                    assert response.json()["balance"] == 500
                    assert int(response.headers["X-Projection-Position"]) >= written
                    assert "X-Projection-Stale" not in response.headers
    finally:
        await engine.dispose()
        await store.close()


class _ReplicasBehindOneService:
    """The log as a query service behind a load balancer sees it (the calls of the
    event store interface the route makes): each call of a kind goes to the next of
    the replicas in turn, the first head to the one ahead, the first page to the one
    behind."""

    def __init__(self, ahead: EventStore, behind: EventStore) -> None:
        self._heads = itertools.cycle([ahead, behind])
        self._pages = itertools.cycle([behind, ahead])

    async def head_position(self) -> int:
        return await next(self._heads).head_position()

    async def read_all(self, after_position: int = 0, limit: int = 1000) -> list[RecordedEvent]:
        return await next(self._pages).read_all(after_position, limit)


async def test_the_log_page_for_min_position_comes_from_a_replica_that_has_it() -> None:
    ahead = await open_event_store("sqlite://:memory:")
    behind = await open_event_store("sqlite://:memory:")
    try:
        for store in (ahead, behind):
            await store.append("account-a1", [NewEvent("AccountOpened", {"n": 0})])
        written = await ahead.append("account-a1", [NewEvent("MoneyDeposited", {"n": 1})])
        service = _ReplicasBehindOneService(ahead, behind)
        settings = QueriesSettings(eventstore_url="sqlite://:memory:", min_position_timeout=2)
        engine = open_engine("sqlite://:memory:", writer=False, memory_key="log-replicas")
        app = create_app(settings, engine=engine, store=service)  # type: ignore[arg-type]
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app)
            async with httpx.AsyncClient(transport=transport, base_url="http://q") as client:
                for _ in range(4):
                    answer = await client.get(f"/v1/events?min_position={written.position}")
                    positions = [e["position"] for e in answer.json()["events"]]
                    assert written.position in positions
                    assert "X-Projection-Stale" not in answer.headers
        await engine.dispose()
    finally:
        await ahead.close()
        await behind.close()
