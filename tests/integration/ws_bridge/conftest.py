"""Fixtures of the bridge's integration tests: the real pipeline (PostgreSQL, RabbitMQ,
commands, relay) with three bridge replicas behind nginx, shared by a module."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from chronicle.topology import projection_queues
from tests import services
from tests.integration.ws_bridge.stack import Nginx, Process, Stack

REPLICAS = 3


@dataclass
class Pipeline:
    stack: Stack
    commands: Process
    relay: Process
    bridges: list[Process]
    nginx: Nginx

    def open_account(self, http: httpx.Client, account_id: str) -> int:
        reply = http.post(
            f"{self.commands.url}/v1/accounts", json={"account_id": account_id, "owner": "test"}
        )
        assert reply.status_code == 201, reply.text
        position: int = reply.json()["position"]
        return position


@pytest.fixture(scope="module")
def module_db(pg_template: str) -> Iterator[str]:
    """A fresh migrated PostgreSQL database shared by one module's tests."""
    name = services.unique_name("chronicle_wsb")
    services.run_sync(lambda: services.create_database(name, template=pg_template))
    try:
        yield services.database_url(name)
    finally:
        services.run_sync(lambda: services.drop_database(name))


@pytest.fixture(scope="module")
def pipeline(module_db: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pipeline]:
    services.require("RabbitMQ", services.AMQP_URL)
    tmp = tmp_path_factory.mktemp("bridge-stack")
    stack = Stack(tmp, module_db, services.AMQP_URL)
    nginx: Nginx | None = None
    try:
        relay = stack.start("relay", "relay", CHRONICLE_RELAY_RETRY_MAX_DELAY="0.5")
        commands = stack.start("commands", "commands")
        bridges = [
            stack.start(
                "bridge",
                f"bridge-{i}",
                CHRONICLE_BRIDGE_QUEUE_SIZE="100",
                CHRONICLE_BRIDGE_WRITE_LIMIT="16384",
                CHRONICLE_BRIDGE_SHUTDOWN_GRACE="5",
                CHRONICLE_BRIDGE_SEND_BUFFER="16384",
                # A slow client gets its 1013 close frame after what is already on the
                # wire; it must have time to read that far.
                CHRONICLE_BRIDGE_CLOSE_TIMEOUT="30",
            )
            for i in range(REPLICAS)
        ]
        for process in [relay, commands, *bridges]:
            process.wait_ready()
        nginx = Nginx(tmp / "nginx", [bridge.port for bridge in bridges]).start()
        yield Pipeline(stack, commands, relay, bridges, nginx)
    finally:
        if nginx is not None:
            nginx.stop()
        stack.stop_all()
        names = [queue.name for queue in projection_queues()]
        services.run_sync(lambda: stack.delete_broker_objects(names))


def log_tail(path: Path, size: int = 2000) -> str:
    return path.read_text(errors="replace")[-size:] if path.exists() else ""
