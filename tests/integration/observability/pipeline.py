"""Every Chronicle process run in this test's process, each on a free port, through the
same ``serve(stop, resources, settings)`` entry points `chronicle serve` and `chronicle
up` use; plus helpers to read their /metrics and wait for a condition."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from chronicle import run_bridge, run_commands, run_projector, run_queries, run_relay
from chronicle.runtime import Resources
from commands.settings import CommandsSettings
from eventstore.relay import RelaySettings
from projections.settings import ProjectorSettings, QueriesSettings
from ws_bridge.settings import BridgeSettings

SERVES: dict[str, tuple[Callable[..., Awaitable[None]], type[Any]]] = {
    "commands": (run_commands.serve, CommandsSettings),
    "relay": (run_relay.serve, RelaySettings),
    "projector": (run_projector.serve, ProjectorSettings),
    "queries": (run_queries.serve, QueriesSettings),
    "bridge": (run_bridge.serve, BridgeSettings),
}
AUTHENTICATED = {"commands", "bridge"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def wait_for(condition: Callable[[], Awaitable[bool]], timeout: float, what: str) -> None:
    """Poll ``condition`` until true; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not await condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.05)


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a Prometheus text page, by name and sorted labels."""
    found: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = float(sample.value)
    return found


@dataclass
class Pipeline:
    """The running processes: ``ports`` by process name."""

    ports: dict[str, int] = field(default_factory=dict)
    tasks: dict[str, asyncio.Task[None]] = field(default_factory=dict)

    def url(self, process: str) -> str:
        return f"http://127.0.0.1:{self.ports[process]}"

    async def metrics(self, process: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        async with httpx.AsyncClient(timeout=5) as client:
            reply = await client.get(f"{self.url(process)}/metrics")
        reply.raise_for_status()
        return samples(reply.text)

    async def ready(self, process: str) -> int:
        """The status of the process's /readyz (0 when it does not answer)."""
        self.check_running()
        try:
            async with httpx.AsyncClient(timeout=5) as client:
                return (await client.get(f"{self.url(process)}/readyz")).status_code
        except httpx.TransportError:
            return 0

    def check_running(self) -> None:
        for name, task in self.tasks.items():
            if task.done():
                raise AssertionError(f"{name} ended: {task.exception()!r}")


@contextlib.asynccontextmanager
async def running(
    processes: Mapping[str, Mapping[str, Any]],
    resources: Resources | None = None,
    *,
    ready: bool = True,
) -> AsyncIterator[Pipeline]:
    """Start each named process with the settings given (plus a free port; auth off),
    on shared ``resources`` when given; wait until every /readyz answers 200 (when
    ``ready``); stop them all on the way out."""
    pipeline = Pipeline()
    stop = asyncio.Event()
    for name, overrides in processes.items():
        serve, settings_class = SERVES[name]
        pipeline.ports[name] = port = free_port()
        extra = {"auth": "disabled"} if name in AUTHENTICATED else {}
        settings = settings_class(http_port=port, **extra, **overrides)
        pipeline.tasks[name] = asyncio.create_task(serve(stop, resources, settings), name=name)
    try:
        if ready:
            for name in processes:
                await wait_for(lambda n=name: _is_ready(pipeline, n), 30, f"{name} ready")
        yield pipeline
    finally:
        stop.set()
        results = await asyncio.gather(*pipeline.tasks.values(), return_exceptions=True)
        for name, result in zip(pipeline.tasks, results, strict=True):
            assert not isinstance(result, BaseException), f"{name} failed: {result!r}"


async def _is_ready(pipeline: Pipeline, name: str) -> bool:
    return await pipeline.ready(name) == 200
