"""The write side's tables behave alike on every backend (and the in-memory fake)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest

from commands.storage import CommandStorage, MemoryCommandStorage, open_command_storage
from commands.storage.base import NewClaim, Snapshot, StoredResponse
from eventstore import EventStore


@pytest.fixture(params=["backend", "memory"])
async def storage(
    request: pytest.FixtureRequest, store: EventStore, store_url: str
) -> AsyncIterator[CommandStorage]:
    if request.param == "memory":
        yield MemoryCommandStorage()
        return
    opened = await open_command_storage(store, store_url)
    try:
        yield opened
    finally:
        await opened.close()


def claim(key: str, now: float = 1000.0, *, ttl: float = 100, lease: float = 10) -> NewClaim:
    return NewClaim(key, f"fp-{key}", uuid.uuid4(), "/v1/x", 3, now, now + ttl, now + lease)


async def test_the_first_claim_wins(storage: CommandStorage) -> None:
    first = claim("k1")
    owned, record = await storage.claim(first)
    assert owned
    assert (record.claim_id, record.fingerprint, record.seen_version) == (
        first.claim_id,
        "fp-k1",
        3,
    )
    assert record.response is None
    owned, existing = await storage.claim(claim("k1", 1001))
    assert not owned
    assert existing.claim_id == first.claim_id
    assert existing.request_path == "/v1/x"


async def test_concurrent_claims_have_one_winner(storage: CommandStorage) -> None:
    results = await asyncio.gather(*(storage.claim(claim("race")) for _ in range(10)))
    assert sum(owned for owned, _ in results) == 1
    assert len({record.claim_id for _, record in results}) == 1


async def test_an_expired_key_is_claimed_afresh(storage: CommandStorage) -> None:
    old = claim("k2", 1000, ttl=100)
    await storage.claim(old)
    await storage.complete("k2", old.claim_id, StoredResponse(200, b"{}", {}), durable=True)
    owned, _ = await storage.claim(claim("k2", 1099))
    assert not owned
    fresh = claim("k2", 1100)
    owned, record = await storage.claim(fresh)
    assert owned
    assert record.claim_id == fresh.claim_id
    assert (await storage.claim(claim("k2", 1101)))[1].response is None


async def test_responses_round_trip_and_the_first_completion_wins(storage: CommandStorage) -> None:
    first = claim("k3")
    await storage.claim(first)
    response = StoredResponse(422, b'{"code":"x","s":"\\u00e9"}', {"etag": '"4"'})
    await storage.complete("k3", first.claim_id, response, durable=True)
    await storage.complete("k3", first.claim_id, StoredResponse(200, b"{}", {}), durable=False)
    await storage.complete("k3", uuid.uuid4(), StoredResponse(201, b"{}", {}), durable=False)
    assert (await storage.claim(claim("k3", 1001)))[1].response == response


async def test_take_over_only_a_lapsed_unfinished_claim(storage: CommandStorage) -> None:
    first = claim("k4", 1000, lease=10)
    await storage.claim(first)
    assert not await storage.take_over("k4", first.claim_id, 1005, 1015)
    assert not await storage.take_over("k4", uuid.uuid4(), 1010, 1020)
    assert await storage.take_over("k4", first.claim_id, 1010, 1020)
    assert not await storage.take_over("k4", first.claim_id, 1011, 1021)
    await storage.end_lease("k4", first.claim_id, 1012)
    assert await storage.take_over("k4", first.claim_id, 1012, 1022)
    await storage.complete("k4", first.claim_id, StoredResponse(200, b"{}", {}), durable=False)
    assert not await storage.take_over("k4", first.claim_id, 2000, 2010)


async def test_release_frees_an_unfinished_claim_only(storage: CommandStorage) -> None:
    pending, done = claim("k5"), claim("k6")
    await storage.claim(pending)
    await storage.claim(done)
    await storage.complete("k6", done.claim_id, StoredResponse(200, b"{}", {}), durable=True)
    await storage.release("k5", pending.claim_id)
    await storage.release("k6", done.claim_id)
    assert (await storage.claim(claim("k5", 1001)))[0]
    assert not (await storage.claim(claim("k6", 1001)))[0]


async def test_purge_deletes_expired_keys_in_batches(storage: CommandStorage) -> None:
    for i in range(5):
        await storage.claim(claim(f"old{i}", 1000, ttl=10))
    await storage.claim(claim("young", 1000, ttl=1000))
    assert await storage.purge_expired(1010, limit=3) == 3
    assert await storage.purge_expired(1010, limit=3) == 2
    assert await storage.purge_expired(1010) == 0
    assert not (await storage.claim(claim("young", 1011)))[0]


async def test_snapshots_only_move_forward(storage: CommandStorage) -> None:
    assert await storage.load_snapshot("account-s") is None
    await storage.save_snapshot(Snapshot("account-s", 200, 1, '{"balance": 2}'))
    await storage.save_snapshot(Snapshot("account-s", 100, 1, '{"balance": 1}'))
    assert await storage.load_snapshot("account-s") == Snapshot(
        "account-s", 200, 1, '{"balance": 2}'
    )
    await storage.save_snapshot(Snapshot("account-s", 150, 2, '{"balance": 3}'))
    assert (await storage.load_snapshot("account-s")) == Snapshot(
        "account-s", 150, 2, '{"balance": 3}'
    )
    await storage.ping()
