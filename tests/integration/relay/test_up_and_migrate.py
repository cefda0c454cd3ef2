"""`chronicle up` from nothing, and `chronicle migrate` declaring the broker topology."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import aio_pika
import httpx
import pytest

from chronicle.topology import projection_queues
from eventstore import open_event_store
from tests.integration.relay.conftest import Broker, sample
from tests.unit.relay.helpers import wait_until

CHRONICLE = str(Path(sys.executable).with_name("chronicle"))
UP_PORTS = {"commands": 8000, "queries": 8001, "bridge": 8002, "relay": 8003, "projector": 8004}


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHRONICLE_")}
    return {**env, **extra}


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


async def _ready(port: int) -> bool:
    try:
        async with httpx.AsyncClient(timeout=2) as client:
            return (await client.get(f"http://127.0.0.1:{port}/readyz")).status_code == 200
    except httpx.TransportError:
        return False


@pytest.mark.slow
async def test_up_runs_the_system_on_an_sqlite_file_and_stops_cleanly(tmp_path: Path) -> None:
    busy = [name for name, port in UP_PORTS.items() if not _port_free(port)]
    assert not busy, f"ports of {busy} are taken; `chronicle up` needs them"
    url = f"sqlite:///{tmp_path / 'up.db'}"
    log_path = tmp_path / "up.log"
    with log_path.open("wb") as log:
        up = subprocess.Popen(
            [CHRONICLE, "up"], env=_clean_env(CHRONICLE_EVENTSTORE_URL=url), stdout=log, stderr=log
        )
    try:
        for port in (UP_PORTS["commands"], UP_PORTS["relay"]):
            await wait_until(lambda p=port: _ready(p), 30, f"port {port} ready", interval=0.1)
        async with httpx.AsyncClient(base_url="http://127.0.0.1:8000") as client:
            created = await client.post("/v1/accounts", json={"owner": "smoke test"})
        assert created.status_code == 201, created.text
        body = created.json()
        store = await open_event_store(url)
        try:
            logged = await store.read_stream(body["stream_id"])
        finally:
            await store.close()
        assert [(e.type, e.position) for e in logged] == [("AccountOpened", body["position"])]

        async def relayed() -> bool:
            async with httpx.AsyncClient() as client:
                text = (await client.get("http://127.0.0.1:8003/metrics")).text
            return sample(text, "chronicle_relay_confirmed_position") >= body["position"]

        await wait_until(relayed, 10, "the relay to publish the event")
        up.send_signal(signal.SIGTERM)
        assert up.wait(30) == 0, log_path.read_text()
    finally:
        if up.poll() is None:
            up.kill()
            up.wait(10)
    output = log_path.read_text()
    assert "Chronicle up: store" in output
    assert "Chronicle stopped." in output


@pytest.mark.postgres
@pytest.mark.rabbitmq
def test_migrate_declares_the_broker_topology_idempotently(pg_url: str, broker: Broker) -> None:
    broker.queues.extend(spec.name for spec in projection_queues())
    broker.queues.extend(["account_summary", "transfers"])
    env = _clean_env(CHRONICLE_EVENTSTORE_URL=pg_url, **broker.env())
    asyncio.run(_migrate_over_queues_per_projection(broker, env))
    for _ in range(2):
        done = subprocess.run(
            [CHRONICLE, "migrate"], env=env, capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, done.stderr
        assert f"topology {broker.prefix!r} declared" in done.stdout
    asyncio.run(_assert_declared(broker))


async def _migrate_over_queues_per_projection(broker: Broker, env: dict[str, str]) -> None:
    """Queues of the earlier topology (one per projection): migrate deletes the unused
    one and leaves, naming it, the one a consumer still holds."""
    topology = broker.topology
    unused, consumed = topology.queue_name("account_summary"), topology.queue_name("transfers")
    connection = await aio_pika.connect(broker.url)
    async with connection:
        channel = await connection.channel()
        for name in (unused, consumed):
            queue = await channel.declare_queue(
                name, durable=True, arguments=topology.queue_arguments()
            )
        await channel.default_exchange.publish(aio_pika.Message(b"{}"), routing_key=unused)

        async def ack(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            await message.ack()

        await queue.consume(ack)  # holds ``consumed``
        done = await asyncio.to_thread(
            subprocess.run,
            [CHRONICLE, "migrate"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        assert f"deleted the earlier queues per projection: {unused}" in done.stdout
        assert f"left in place (delete once unused): {consumed}" in done.stdout
        check = await connection.channel()
        with pytest.raises(aio_pika.exceptions.ChannelNotFoundEntity):
            await check.declare_queue(unused, passive=True)
        assert (await channel.declare_queue(consumed, passive=True)).name == consumed


async def _assert_declared(broker: Broker) -> None:
    connection = await aio_pika.connect(broker.url)
    async with connection:
        channel = await connection.channel()
        topology = broker.topology
        await channel.get_exchange(topology.exchange, ensure=True)
        await channel.get_queue(topology.broadcast, ensure=True)
        # The projector declares its queue itself, when it first consumes.
        for spec in projection_queues():
            with pytest.raises(aio_pika.exceptions.ChannelNotFoundEntity):
                await channel.get_queue(topology.queue_name(spec.name), ensure=True)
