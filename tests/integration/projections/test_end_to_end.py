"""End to end on PostgreSQL + RabbitMQ: POST a deposit to the command API, then GET the
account with ``min_position`` from the response: the new balance, first try."""

from __future__ import annotations

import httpx
import pytest

from projections.api import create_app
from projections.settings import QueriesSettings
from tests.integration.commands.harness import running_api
from tests.integration.projections.conftest import Stack

pytestmark = [pytest.mark.postgres, pytest.mark.rabbitmq]


async def test_a_deposit_is_readable_at_its_position_first_try(stack: Stack) -> None:
    stack.start_relay()
    stack.start(stack.projector().run)
    queries = create_app(
        # A cold relay and projector may take a while on a loaded machine; the answer
        # must still come first try.
        QueriesSettings(eventstore_url=stack.url, min_position_timeout=30),
        engine=stack.engine,
        store=stack.store,
    )
    transport = httpx.ASGITransport(queries)
    async with (
        running_api(stack.url, auth=False, store=stack.store) as api,
        queries.router.lifespan_context(queries),
        httpx.AsyncClient(transport=transport, base_url="http://queries") as reads,
    ):
        for round_ in range(5):
            account = f"e2e-{round_}"
            await api.open(account)
            deposit = await api.deposit(account, 1000 + round_)
            assert deposit.status_code == 200, deposit.text
            position = deposit.json()["position"]
            response = await reads.get(f"/v1/accounts/{account}?min_position={position}")
            assert response.status_code == 200
            assert response.json()["balance"] == 1000 + round_
            assert "X-Projection-Stale" not in response.headers
            assert int(response.headers["X-Projection-Position"]) >= position
            statement = await reads.get(
                f"/v1/accounts/{account}/transactions?min_position={position}"
            )
            assert [line["amount"] for line in statement.json()["items"]] == [1000 + round_]
