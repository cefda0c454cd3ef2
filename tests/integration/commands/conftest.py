"""Fixtures of the write side's integration tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.integration.commands.harness import Api, running_api


@pytest.fixture
async def api(pg_url: str) -> AsyncIterator[Api]:
    """The command API on a fresh PostgreSQL database, auth on, transfer manager on."""
    async with running_api(pg_url) as running:
        yield running
