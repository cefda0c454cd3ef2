"""`chronicle serve queries` and `chronicle serve projector` as processes: they serve
their ports, answer health checks, and exit cleanly on SIGTERM."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import httpx
import pytest

from tests.integration.projections.conftest import Stack, Subprocess, free_port, wait_for

pytestmark = [pytest.mark.postgres, pytest.mark.rabbitmq]


async def _up(url: str) -> bool:
    try:
        async with httpx.AsyncClient() as client:
            return (await client.get(url)).status_code == 200
    except httpx.TransportError:
        return False


async def test_queries_and_projector_processes_serve_and_stop_on_sigterm(
    stack: Stack, tmp_path: Path
) -> None:
    queries_port, projector_port = free_port(), free_port()
    queries = Subprocess(
        ["serve", "queries"],
        stack.env(CHRONICLE_HTTP_PORT=str(queries_port)),
        tmp_path / "queries.log",
    )
    projector = Subprocess(
        ["serve", "projector"],
        stack.env(CHRONICLE_HTTP_PORT=str(projector_port)),
        tmp_path / "projector.log",
    )
    queries.start()
    projector.start()
    try:
        base = f"http://127.0.0.1:{queries_port}"
        await wait_for(lambda: _up(f"{base}/readyz"), 30, "queries ready")
        await wait_for(lambda: _up(f"http://127.0.0.1:{projector_port}/readyz"), 30, "projector")
        async with httpx.AsyncClient(base_url=base) as client:
            stats = await client.get("/v1/stats")
            docs = await client.get("/openapi.json")
        assert stats.status_code == 200
        assert stats.headers["X-Projection-Position"] == "0"
        assert docs.json()["info"]["title"] == "Chronicle queries"
    finally:
        for process in (queries, projector):
            assert process.process is not None
            process.process.send_signal(signal.SIGTERM)
        codes = [await asyncio.to_thread(p.process.wait, 20) for p in (queries, projector)]  # type: ignore[union-attr]
        queries.kill()
        projector.kill()
    assert codes == [0, 0], (tmp_path / "projector.log").read_text()
