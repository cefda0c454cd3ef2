"""Idempotency-Key against real databases: one write per key, whatever happens."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import pytest

from commands.api.schemas import AmountBody
from commands.domain import account
from commands.domain.account import Withdraw
from commands.service.context import CommandContext, derived_ids
from commands.service.idempotency import IdempotencyGuard, KeyedRequest, Run, fingerprint
from commands.storage import open_command_storage
from commands.storage.base import CommandStorage, NewClaim, StoredResponse
from eventstore import open_event_store
from tests.integration.commands.harness import Api, running_api, token


def _id(prefix: str = "acc") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def _key() -> dict[str, str]:
    return {"Idempotency-Key": f"key-{uuid.uuid4().hex}"}


@pytest.mark.postgres
async def test_same_key_same_body_replays_the_first_response(api: Api) -> None:
    account_id = _id()
    await api.open(account_id)
    key = _key()
    first = await api.deposit(account_id, 700, headers=key)
    assert first.status_code == 200
    assert "idempotent-replayed" not in first.headers
    written = await api.log()
    again = await api.deposit(account_id, 700, headers=key)
    assert again.status_code == 200
    assert again.content == first.content
    assert again.headers["etag"] == first.headers["etag"]
    assert again.headers["idempotent-replayed"] == "true"
    assert await api.log() == written


@pytest.mark.postgres
async def test_same_key_other_request_is_422(api: Api) -> None:
    account_id, other = _id(), _id()
    await api.open(account_id)
    await api.open(other)
    key = _key()
    assert (await api.deposit(account_id, 1, headers=key)).status_code == 200
    written = await api.log()
    for response in [
        await api.deposit(account_id, 2, headers=key),
        await api.deposit(other, 1, headers=key),
        await api.client.post(
            f"/v1/accounts/{account_id}/withdrawals", json={"amount": 1}, headers=key
        ),
        await api.deposit(account_id, 1, headers={**key, "If-Match": '"2"'}),
    ]:
        assert response.status_code == 422
        assert response.json()["code"] == "idempotency_key_reused"
    assert await api.log() == written


@pytest.mark.postgres
async def test_keys_are_scoped_by_actor(api: Api) -> None:
    account_id = _id()
    await api.open(account_id)
    key = _key()
    alice = await api.deposit(account_id, 5, headers=key)
    bob = await api.deposit(
        account_id, 5, headers={**key, "Authorization": f"Bearer {token('bob')}"}
    )
    assert alice.json()["version"] == 2
    assert bob.json()["version"] == 3


@pytest.mark.postgres
async def test_a_refusal_is_replayed_too(api: Api) -> None:
    account_id = _id()
    await api.open(account_id)
    key = _key()
    refused = await api.client.post(
        f"/v1/accounts/{account_id}/withdrawals", json={"amount": 50}, headers=key
    )
    assert refused.json()["code"] == "insufficient_funds"
    await api.deposit(account_id, 100)
    written = await api.log()
    again = await api.client.post(
        f"/v1/accounts/{account_id}/withdrawals", json={"amount": 50}, headers=key
    )
    assert again.status_code == 422
    assert again.content == refused.content
    assert again.headers["idempotent-replayed"] == "true"
    assert await api.log() == written


@pytest.mark.postgres
async def test_a_generated_id_is_stable_under_retries(api: Api) -> None:
    key = _key()
    first = await api.client.post("/v1/accounts", json={"owner": "Ada"}, headers=key)
    again = await api.client.post("/v1/accounts", json={"owner": "Ada"}, headers=key)
    assert first.status_code == again.status_code == 201
    assert first.headers["location"] == again.headers["location"]
    assert len(await api.log()) == 1


@pytest.mark.postgres
async def test_concurrent_requests_with_one_key_write_once(api: Api) -> None:
    account_id = _id()
    await api.open(account_id)
    key = _key()
    responses = await asyncio.gather(*(api.deposit(account_id, 10, headers=key) for _ in range(12)))
    assert {r.status_code for r in responses} == {200}
    assert len({r.content for r in responses}) == 1
    assert sum("idempotent-replayed" in r.headers for r in responses) == 11
    assert [e.type for e in await api.log()] == ["AccountOpened", "MoneyDeposited"]


@pytest.mark.postgres
async def test_concurrent_requests_on_two_servers_write_once(pg_url: str) -> None:
    account_id = _id()
    key = _key()
    async with running_api(pg_url) as one, running_api(pg_url, transfer_manager=False) as two:
        await one.open(account_id)
        calls = [server.deposit(account_id, 10, headers=key) for server in (one, two) * 6]
        responses = await asyncio.gather(*calls)
        assert {r.status_code for r in responses} == {200}
        assert len({r.content for r in responses}) == 1
        assert [e.type for e in await one.log()] == ["AccountOpened", "MoneyDeposited"]


class _DiesAfterAppend(CommandStorage):
    """The real storage, except that the process "dies" right after the append: the
    response is never stored and nothing else reaches the database."""

    def __init__(self, real: CommandStorage) -> None:
        self.real = real

    async def claim(self, claim: Any) -> Any:
        return await self.real.claim(claim)

    async def complete(self, *args: Any, **kwargs: Any) -> None:
        return None

    async def end_lease(self, *args: Any) -> None:
        return None

    async def take_over(self, *args: Any) -> bool:
        raise AssertionError("not used")

    async def release(self, *args: Any) -> None:
        raise AssertionError("not used")

    async def purge_expired(self, *args: Any) -> int:
        raise AssertionError("not used")

    async def load_snapshot(self, stream_id: str) -> Any:
        return None

    async def save_snapshot(self, snapshot: Any) -> None:
        return None

    async def ping(self) -> None:
        return None


@pytest.mark.parametrize("backend", ["postgres", "sqlite"])
async def test_a_crash_between_append_and_response_never_writes_twice(
    backend: str, request: pytest.FixtureRequest
) -> None:
    """The first run appends a withdrawal of the whole balance and dies before storing
    its response. The retry (after the lease) must answer with that withdrawal, not
    refuse it for lack of funds, and must not withdraw again."""
    url = request.getfixturevalue("pg_url" if backend == "postgres" else "sqlite_url")
    account_id, key = _id(), f"key-{uuid.uuid4().hex}"
    path = f"/v1/accounts/{account_id}/withdrawals"
    store = await open_event_store(url)
    try:
        async with running_api(url, store=store, idempotency_lease=0.2) as api:
            await api.open(account_id)
            await api.deposit(account_id, 300)
            await _first_run_dies(api, url, path, key, account_id)
            retried = await api.client.post(
                path, json={"amount": 300}, headers={"Idempotency-Key": key}
            )
            log = await api.log()
    finally:
        await store.close()
    assert retried.status_code == 200, retried.text
    assert [e.type for e in log] == ["AccountOpened", "MoneyDeposited", "MoneyWithdrawn"]
    assert retried.json()["position"] == log[-1].position
    assert retried.headers["etag"] == '"3"'


async def _first_run_dies(api: Api, url: str, path: str, key: str, account_id: str) -> None:
    storage = await open_command_storage(api.store, url)
    try:
        guard = IdempotencyGuard(_DiesAfterAppend(storage), lease=0.2)
        keyed = KeyedRequest(
            actor="alice",
            key=key,
            fingerprint=fingerprint(path, AmountBody(amount=300).model_dump_json(), ""),
            request_path=path,
            seen_version=2,
        )

        async def execute(run: Run) -> StoredResponse:
            await api.side.handler.execute(
                account.aggregate,
                Withdraw(account_id=account_id, amount=300),
                CommandContext("alice", "c", "c"),
                event_ids=derived_ids(run.claim_id),
            )
            return StoredResponse(200, b"{}", {})

        await guard.run(keyed, execute)
        await guard.drain()
    finally:
        await storage.close()


@pytest.mark.postgres
async def test_a_key_in_progress_is_409_after_the_wait(pg_url: str) -> None:
    async with running_api(pg_url, idempotency_wait=0.0) as api:
        account_id, key = _id(), f"key-{uuid.uuid4().hex}"
        await api.open(account_id)
        path = f"/v1/accounts/{account_id}/deposits"
        keyed = KeyedRequest(
            "alice", key, fingerprint(path, AmountBody(amount=5).model_dump_json(), ""), path, 1
        )
        now = time.time()
        # Another server claimed the key a moment ago and is still running it.
        claim = NewClaim(keyed.key_hash, keyed.fingerprint, uuid.uuid4(), path, 1, now,
                         now + 600, now + 600)  # fmt: skip
        assert (await api.side.storage.claim(claim))[0]
        written = await api.log()
        response = await api.deposit(account_id, 5, headers={"Idempotency-Key": key})
        assert response.status_code == 409
        assert response.json()["code"] == "idempotency_key_in_progress"
        assert response.headers["retry-after"] == "1"
        assert await api.log() == written


@pytest.mark.parametrize("backend", ["sqlite-memory", "sqlite-file"])
async def test_idempotent_replay_on_sqlite(backend: str, sqlite_url: str) -> None:
    url = "sqlite://:memory:" if backend == "sqlite-memory" else sqlite_url
    async with running_api(url) as api:
        account_id, key = _id(), _key()
        await api.open(account_id)
        first = await api.deposit(account_id, 9, headers=key)
        again = await api.deposit(account_id, 9, headers=key)
        other = await api.deposit(account_id, 8, headers=key)
        assert again.content == first.content
        assert again.headers["idempotent-replayed"] == "true"
        assert other.json()["code"] == "idempotency_key_reused"
        assert [e.type for e in await api.log()] == ["AccountOpened", "MoneyDeposited"]
