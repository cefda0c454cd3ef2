"""/readyz of every process follows its dependencies: PostgreSQL and RabbitMQ are put
behind TCP proxies this test controls; taking one away makes the processes that need it
unready (and only those), bringing it back makes them ready again. /healthz stays 200
throughout: it never touches a dependency."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from urllib.parse import urlsplit

import httpx
import pytest

from tests.integration.observability.pipeline import Pipeline, running, wait_for
from tests.integration.relay.conftest import STREAM_MAX_BYTES, STREAM_SEGMENT_BYTES, Broker
from tests.tcp_proxy import TcpProxy

pytestmark = [pytest.mark.postgres, pytest.mark.rabbitmq]

PROCESSES = ("commands", "relay", "projector", "queries", "bridge")
USE_BROKER = {"relay", "projector", "bridge"}


def _through(url: str, proxy: TcpProxy) -> str:
    parts = urlsplit(url)
    credentials = parts.netloc.rsplit("@", 1)[0] + "@" if "@" in parts.netloc else ""
    return parts._replace(netloc=f"{credentials}127.0.0.1:{proxy.port}").geturl()


@pytest.fixture
async def broker(amqp_url: str) -> AsyncIterator[Broker]:
    broker = Broker(amqp_url)
    try:
        yield broker
    finally:
        await broker.cleanup()


async def _statuses(pipeline: Pipeline, path: str, names: Iterable[str]) -> dict[str, int]:
    found = {}
    async with httpx.AsyncClient(timeout=5) as client:
        for name in names:
            found[name] = (await client.get(f"{pipeline.url(name)}{path}")).status_code
    return found


async def _wait_status(pipeline: Pipeline, names: set[str], status: int, what: str) -> None:
    async def reached() -> bool:
        pipeline.check_running()
        return set((await _statuses(pipeline, "/readyz", names)).values()) == {status}

    await wait_for(reached, 60, what)


async def test_readyz_follows_postgres_and_rabbitmq(pg_url: str, broker: Broker) -> None:
    pg, mq = urlsplit(pg_url), urlsplit(broker.url)
    async with (
        TcpProxy(pg.hostname or "127.0.0.1", pg.port or 5432) as pg_proxy,
        TcpProxy(mq.hostname or "127.0.0.1", mq.port or 5672) as mq_proxy,
    ):
        settings = {
            "eventstore_url": _through(pg_url, pg_proxy),
            "broker_url": _through(broker.url, mq_proxy),
            "broker_prefix": broker.prefix,
            "broker_stream_max_bytes": STREAM_MAX_BYTES,
            "broker_stream_segment_bytes": STREAM_SEGMENT_BYTES,
            "broker_connect_timeout": 1.0,
            "pool_size": 3,
        }
        async with running(dict.fromkeys(PROCESSES, settings)) as pipeline:
            everyone = set(PROCESSES)
            await pg_proxy.outage()
            await _wait_status(pipeline, everyone, 503, "every process unready without PostgreSQL")
            assert set((await _statuses(pipeline, "/healthz", everyone)).values()) == {200}
            await pg_proxy.resume()
            await _wait_status(pipeline, everyone, 200, "every process ready again")

            await mq_proxy.outage()
            await _wait_status(pipeline, USE_BROKER, 503, "broker users unready without RabbitMQ")
            others = everyone - USE_BROKER
            assert set((await _statuses(pipeline, "/readyz", others)).values()) == {200}
            assert set((await _statuses(pipeline, "/healthz", everyone)).values()) == {200}
            await mq_proxy.resume()
            await _wait_status(pipeline, everyone, 200, "every process ready after RabbitMQ")
