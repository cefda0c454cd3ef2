"""Read-your-writes across a PostgreSQL hot standby.

A self-contained pair is built for the test (the machine's shared server is never
touched): ``initdb`` a primary in a temporary directory on a free port,
``pg_basebackup -R`` a streaming standby on another port, with
``recovery_min_apply_delay`` so the standby visibly lags. The event store, the relay
and the projector run against the primary; the query API reads the standby. A plain
read right after a write sees the old balance (the lag is real); a read with
``min_position`` sees the new one, every time.
"""

from __future__ import annotations

import asyncio
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx
import pytest

from chronicle.migrations import all_migrations
from commands.events import AccountOpened, MoneyDeposited, account_stream, encode
from eventstore import NewEvent, open_event_store
from eventstore.bus.memory import MemoryBus
from eventstore.migrations import migrate
from eventstore.relay import Relay, RelayConfig, SoleLeadership
from projections.api import create_app
from projections.bank import bank_projections
from projections.db import open_engine
from projections.parking import MemoryParkingLot
from projections.projector import Projector, queue_specs
from projections.settings import QueriesSettings
from tests import services
from tests.integration.projections.conftest import FAST, free_port

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

BIN = Path("/usr/lib/postgresql/15/bin")
APPLY_DELAY_MS = 300


def _as_postgres(*args: str) -> list[str]:
    """Run a server binary as the ``postgres`` user (they refuse to run as root)."""
    command = [str(BIN / args[0]), *args[1:]]
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


def _run(*args: str) -> None:
    subprocess.run(_as_postgres(*args), check=True, capture_output=True, timeout=60)


@dataclass
class Pair:
    root: Path
    primary_port: int
    standby_port: int

    def url(self, port: int, database: str = "chronicle") -> str:
        return f"postgresql://postgres@127.0.0.1:{port}/{database}"


def _start(data: Path, port: int, socket_dir: Path) -> None:
    options = f"-p {port} -k {socket_dir} -c listen_addresses=127.0.0.1 -c fsync=off"
    _run(
        "pg_ctl",
        "-D",
        str(data),
        "-o",
        options,
        "-l",
        str(data.parent / f"{port}.log"),
        "-w",
        "start",
    )


@pytest.fixture
def replica_pair() -> Iterator[Pair]:
    if not (BIN / "initdb").exists() or not shutil.which("runuser"):
        message = f"PostgreSQL 15 server binaries (initdb, pg_basebackup) not found in {BIN}"
        if services.IN_CI:
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    root = Path(tempfile.mkdtemp(prefix="chronicle-replica-"))
    owner = pwd.getpwnam("postgres") if os.geteuid() == 0 else None
    if owner is not None:
        os.chown(root, owner.pw_uid, owner.pw_gid)
    pair = Pair(root, free_port(), free_port())
    primary, standby = root / "primary", root / "standby"
    started: list[Path] = []
    try:
        _run("initdb", "-D", str(primary), "-U", "postgres", "-A", "trust", "--no-sync")
        _start(primary, pair.primary_port, root)
        started.append(primary)
        _run(
            "pg_basebackup", "-h", "127.0.0.1", "-p", str(pair.primary_port), "-U", "postgres",
            "-D", str(standby), "-R", "-X", "stream", "--no-sync",
        )  # fmt: skip
        with (standby / "postgresql.auto.conf").open("a") as conf:
            conf.write(f"recovery_min_apply_delay = '{APPLY_DELAY_MS}ms'\n")
        _start(standby, pair.standby_port, root)
        started.append(standby)
        yield pair
    finally:
        for data in reversed(started):
            subprocess.run(
                _as_postgres("pg_ctl", "-D", str(data), "-m", "immediate", "-w", "stop"),
                capture_output=True,
                timeout=60,
                check=False,
            )
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
async def primary_url(replica_pair: Pair) -> str:
    admin = await asyncpg.connect(replica_pair.url(replica_pair.primary_port, "postgres"))
    try:
        await admin.execute("CREATE DATABASE chronicle")
    finally:
        await admin.close()
    url = replica_pair.url(replica_pair.primary_port)
    await migrate(url, all_migrations())
    await _replicated(replica_pair.url(replica_pair.standby_port))
    return url


async def _replicated(standby_url: str) -> None:
    """Wait until the standby has replayed the schema (setup, before any timing)."""
    for _ in range(500):
        try:
            conn = await asyncpg.connect(standby_url)
        except asyncpg.InvalidCatalogNameError:
            await asyncio.sleep(0.02)
            continue
        try:
            found = await conn.fetchval("SELECT to_regclass('rm_checkpoints') IS NOT NULL")
        finally:
            await conn.close()
        if found:
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the standby never replayed the schema")


async def test_min_position_reads_its_writes_on_a_lagging_standby(
    replica_pair: Pair, primary_url: str
) -> None:
    standby_url = replica_pair.url(replica_pair.standby_port)
    store = await open_event_store(primary_url)
    bus = MemoryBus(queues=queue_specs())
    writer_engine = open_engine(primary_url, writer=True)
    reader_engine = open_engine(standby_url, writer=False, statement_cache=False)
    stop = asyncio.Event()
    config = RelayConfig(name="relay", poll_max_delay=0.01)
    projector = Projector(
        bank_projections(),
        engine=writer_engine,
        store=store,
        bus=bus,
        parking=MemoryParkingLot(),
        config=FAST,
    )
    tasks = [
        asyncio.create_task(Relay(store, bus, SoleLeadership(), config).run(stop)),
        asyncio.create_task(projector.run(stop)),
    ]
    settings = QueriesSettings(
        eventstore_url=primary_url, read_database_url=standby_url, min_position_timeout=30
    )
    app = create_app(settings, engine=reader_engine, store=store)
    stale_reads = 0
    try:
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://q") as q,
        ):
            stream = account_stream("rep1")
            await _append(store, stream, AccountOpened(account_id="rep1", owner="Ada"))
            for i in range(1, 6):
                position = await _append(
                    store, stream, MoneyDeposited(account_id="rep1", amount=10)
                )
                plain = await q.get("/v1/accounts/rep1")
                if plain.status_code == 404 or plain.json()["balance"] != 10 * i:
                    stale_reads += 1
                fresh = await q.get(f"/v1/accounts/rep1?min_position={position}")
                assert fresh.status_code == 200, fresh.text
                assert fresh.json()["balance"] == 10 * i
                assert int(fresh.headers["X-Projection-Position"]) >= position
                assert "X-Projection-Stale" not in fresh.headers
        # The standby really lagged behind the primary's read model.
        assert stale_reads >= 1
    finally:
        stop.set()
        await asyncio.gather(*tasks)
        await bus.close()
        await writer_engine.dispose()
        await reader_engine.dispose()
        await store.close()


async def _append(store: object, stream: str, event: object) -> int:
    event_type, data, metadata = encode(event)  # type: ignore[arg-type]
    result = await store.append(stream, [NewEvent(event_type, data, metadata)])  # type: ignore[attr-defined]
    return int(result.position)
