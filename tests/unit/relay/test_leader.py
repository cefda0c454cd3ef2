"""Leader election without a database server: the SQLite lock file and the sole relay."""

from __future__ import annotations

import asyncio
from pathlib import Path

from eventstore.leader import FileLeadership, PostgresLeadership, SoleLeadership, lock_key
from eventstore.relay import RelayConfig, leadership_for


async def test_only_one_file_lock_holder_until_it_releases(tmp_path: Path) -> None:
    path = str(tmp_path / "relay.lock")
    first, second = FileLeadership(path, 0.01), FileLeadership(path, 0.01)
    stop = asyncio.Event()
    assert await first.acquire(stop)
    waiting = asyncio.create_task(second.acquire(stop))
    await asyncio.sleep(0.05)  # several retries of the standby
    assert not waiting.done()
    await first.release()
    assert await asyncio.wait_for(waiting, 5)
    await second.release()


async def test_a_standby_gives_up_when_told_to_stop(tmp_path: Path) -> None:
    path = str(tmp_path / "relay.lock")
    holder, standby = FileLeadership(path, 0.01), FileLeadership(path, 0.01)
    stop = asyncio.Event()
    assert await holder.acquire(stop)
    waiting = asyncio.create_task(standby.acquire(stop))
    stop.set()
    assert await asyncio.wait_for(waiting, 5) is False
    await holder.release()


async def test_the_sole_relay_leads_at_once_unless_stopped() -> None:
    stop = asyncio.Event()
    assert await SoleLeadership().acquire(stop)
    stop.set()
    assert not await SoleLeadership().acquire(stop)


def test_the_election_fits_the_store(tmp_path: Path) -> None:
    config = RelayConfig(name="g1")
    assert isinstance(leadership_for("sqlite://:memory:", config), SoleLeadership)
    assert isinstance(leadership_for(f"sqlite:///{tmp_path}/x.db", config), FileLeadership)
    pg = leadership_for("postgresql://u@h/db", config)
    assert isinstance(pg, PostgresLeadership)


def test_lock_keys_are_stable_signed_64_bit_and_per_group() -> None:
    assert lock_key("relay") == lock_key("relay")
    assert lock_key("relay") != lock_key("relay-2")
    assert -(1 << 63) <= lock_key("relay") < 1 << 63
