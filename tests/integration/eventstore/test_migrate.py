"""`chronicle migrate`: versioned, idempotent, safe to run concurrently, and clear about
an unreachable database."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from chronicle.migrations import all_migrations
from eventstore import MigrationError, StoreUnavailable
from eventstore.migrations import Migration, migrate
from tests import services

pytestmark = pytest.mark.postgres


@pytest.fixture
def empty_pg_url() -> Iterator[str]:
    """A PostgreSQL database with nothing in it."""
    services.require("PostgreSQL", services.PG_ADMIN_URL)
    name = services.unique_name("chronicle_empty")
    services.run_sync(lambda: services.create_database(name))
    try:
        yield services.database_url(name)
    finally:
        services.run_sync(lambda: services.drop_database(name))


def chronicle(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "chronicle", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("backend", ["postgres", "sqlite"])
def test_migrate_on_empty_then_again(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    if backend == "postgres":
        url: str = request.getfixturevalue("empty_pg_url")
    else:
        url = f"sqlite:///{tmp_path / 'fresh.db'}"
    first = chronicle("migrate", "--url", url)
    assert first.returncode == 0, first.stderr
    assert f"({len(all_migrations())} applied)" in first.stdout
    again = chronicle("migrate", "--url", url)
    assert again.returncode == 0, again.stderr
    assert "(0 applied)" in again.stdout


def test_migrate_reports_an_unreachable_database_clearly() -> None:
    result = chronicle("migrate", "--url", "postgresql://postgres:secret@127.0.0.1:1/none")
    assert result.returncode == 2
    assert "cannot reach PostgreSQL" in result.stderr
    assert "secret" not in result.stderr


async def test_concurrent_migrators_apply_each_step_once(empty_pg_url: str) -> None:
    results = await asyncio.gather(*(migrate(empty_pg_url, all_migrations()) for _ in range(4)))
    assert sorted(len(applied) for applied in results) == [0, 0, 0, len(all_migrations())]
    conn = await asyncpg.connect(empty_pg_url)
    try:
        count = await conn.fetchval("SELECT count(*) FROM chronicle_migrations")
    finally:
        await conn.close()
    assert count == len(all_migrations())


async def test_a_failing_step_leaves_the_schema_unchanged(empty_pg_url: str) -> None:
    broken = Migration("broken", 1, "bad", "CREATE TABLE t1 (x int); SELEC nonsense;", "")
    with pytest.raises(MigrationError):
        await migrate(empty_pg_url, [*all_migrations(), broken])
    conn = await asyncpg.connect(empty_pg_url)
    try:
        tables = await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    finally:
        await conn.close()
    assert tables == []


async def test_unreachable_database_is_store_unavailable() -> None:
    with pytest.raises(StoreUnavailable):
        await migrate("postgresql://postgres@127.0.0.1:1/none", all_migrations())
