"""Fixtures shared by every test folder: fresh databases and service URLs."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from chronicle.migrations import all_migrations
from eventstore import EventStore, open_event_store
from eventstore.migrations import migrate
from tests import services


@pytest.fixture(scope="session")
def pg_template() -> Iterator[str]:
    """A database with every migration applied, used as the template of ``pg_url``."""
    services.require("PostgreSQL", services.PG_ADMIN_URL)
    name = services.unique_name("chronicle_tpl")
    services.run_sync(lambda: services.create_database(name))
    try:
        services.run_sync(lambda: migrate(services.database_url(name), all_migrations()))
        yield name
    finally:
        services.run_sync(lambda: services.drop_database(name))


@pytest.fixture
def pg_url(pg_template: str) -> Iterator[str]:
    """A fresh, migrated, empty PostgreSQL database for one test, dropped afterwards."""
    name = services.unique_name("chronicle_t")
    services.run_sync(lambda: services.create_database(name, template=pg_template))
    try:
        yield services.database_url(name)
    finally:
        services.run_sync(lambda: services.drop_database(name))


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A new SQLite file database for one test."""
    return f"sqlite:///{tmp_path / 'chronicle.db'}"


@pytest.fixture
def amqp_url() -> str:
    """The machine's RabbitMQ (tests isolate themselves with unique names)."""
    services.require("RabbitMQ", services.AMQP_URL)
    return services.AMQP_URL


@pytest.fixture(params=["sqlite-memory", "sqlite-file", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Every backend's URL, one test run per backend."""
    if request.param == "sqlite-memory":
        return "sqlite://:memory:"
    if request.param == "sqlite-file":
        return f"sqlite:///{tmp_path / 'chronicle.db'}"
    url: str = request.getfixturevalue("pg_url")
    return url


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[EventStore]:
    """An empty event store on each backend."""
    opened = await open_event_store(store_url)
    try:
        yield opened
    finally:
        await opened.close()


_GRACE = 2.0


@pytest.fixture(autouse=True)
async def no_task_left_behind(request: pytest.FixtureRequest) -> AsyncIterator[None]:
    """Fail a test that leaves tasks running on its event loop once its fixtures are
    torn down (after a grace period for tasks finishing by themselves): an unclosed
    connection, say. Left alone, such a task is destroyed pending when the loop closes,
    and the error surfaces at a random later test, at garbage collection."""
    yield
    me = asyncio.current_task()
    others = [task for task in asyncio.all_tasks() if task is not me]
    if not others:
        return
    _, pending = await asyncio.wait(others, timeout=_GRACE)
    if not pending:
        return
    names = sorted(repr(task.get_coro()) for task in pending)
    for task in pending:
        task.cancel()
    await asyncio.wait(pending, timeout=_GRACE)
    pytest.fail(f"{request.node.nodeid} left {len(pending)} task(s) running: {names}")
