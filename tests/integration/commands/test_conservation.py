"""Money conservation end to end: any sequence of HTTP commands against a real store,
with the transfer process manager running. Once every transfer has finished, the
balances folded from the log equal accepted deposits minus accepted withdrawals, and
none is negative."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.integration.commands.harness import Api, running_api
from tests.integration.commands.test_transfers import balance, wait_for_end

ACCOUNTS = 3

operations = st.lists(
    st.one_of(
        st.tuples(st.just("deposit"), st.integers(0, ACCOUNTS - 1), st.integers(1, 300)),
        st.tuples(st.just("withdraw"), st.integers(0, ACCOUNTS - 1), st.integers(1, 300)),
        st.tuples(st.just("close"), st.integers(0, ACCOUNTS - 1)),
        st.tuples(
            st.just("transfer"),
            st.integers(0, ACCOUNTS - 1),
            st.integers(0, ACCOUNTS - 1),
            st.integers(1, 300),
        ),
    ),
    min_size=1,
    max_size=25,
)


async def _run(api: Api, ops: list[tuple[int | str, ...]]) -> None:
    prefix = uuid.uuid4().hex[:8]
    names = [f"acc-{prefix}-{i}" for i in range(ACCOUNTS)]
    for name in names:
        await api.open(name)
    deposited = withdrawn = 0
    transfers = []
    for kind, *args in ops:
        if kind == "transfer":
            source, target, amount = names[int(args[0])], names[int(args[1])], args[2]
            response = await api.client.post(
                "/v1/transfers",
                json={"from_account": source, "to_account": target, "amount": amount},
            )
            if response.status_code == 202:
                transfers.append(response.headers["location"].rsplit("/", 1)[1])
            continue
        name = names[int(args[0])]
        if kind == "close":
            await api.client.post(f"/v1/accounts/{name}/close")
            continue
        path = "deposits" if kind == "deposit" else "withdrawals"
        response = await api.client.post(f"/v1/accounts/{name}/{path}", json={"amount": args[1]})
        assert response.status_code in (200, 422), response.text
        if response.status_code == 200:
            if kind == "deposit":
                deposited += int(args[1])
            else:
                withdrawn += int(args[1])
    await asyncio.gather(*(wait_for_end(api.store, t) for t in transfers))
    balances = [await balance(api.store, name) for name in names]
    assert min(balances) >= 0
    assert sum(balances) == deposited - withdrawn


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=operations)
async def test_money_is_conserved_on_sqlite(ops: list[tuple[int | str, ...]]) -> None:
    async with running_api("sqlite://:memory:", auth=False) as api:
        await _run(api, ops)


@pytest.mark.postgres
@settings(
    max_examples=8,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(ops=operations)
async def test_money_is_conserved_on_postgres(
    pg_url: str, ops: list[tuple[int | str, ...]]
) -> None:
    # One database for every example; each example uses accounts of its own.
    async with running_api(pg_url, auth=False) as api:
        await _run(api, ops)
