"""One scenario through every process (in this process, on in-memory SQLite and the
in-process bus): two accounts, a deposit, a transfer, a live WebSocket subscriber and a
resuming one. The metrics of each process move by the expected amounts, one trace
links the POST to its append, relay publish, projection apply and WebSocket delivery,
and log lines are JSON carrying that trace id."""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from websockets.asyncio.client import ClientConnection, connect

from chronicle.observability import JsonFormatter
from tests.integration.observability.pipeline import Pipeline, wait_for

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def value(found: Samples, name: str, **labels: str) -> float:
    return found.get((name, tuple(sorted(labels.items()))), 0.0)


class Subscriber:
    """A WebSocket client of the bridge that records the events it receives."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.events: list[dict[str, Any]] = []

    async def subscribe(self, after_position: int | None = None) -> None:
        frame: dict[str, Any] = {"op": "subscribe", "id": "s1", "filter": {}}
        if after_position is not None:
            frame["after_position"] = after_position
        await self.ws.send(json.dumps(frame))
        reply = json.loads(await self.ws.recv())
        assert reply["op"] == "subscribed", reply

    async def until(self, position: int) -> list[dict[str, Any]]:
        while not self.events or self.events[-1]["position"] < position:
            frame = json.loads(await self.ws.recv())
            if frame["op"] == "event":
                self.events.append(frame)
        return self.events


@pytest.fixture
def json_logs() -> Iterator[list[str]]:
    """Lines the JSON formatter renders for every record logged meanwhile (INFO up)."""
    lines: list[str] = []

    class Capture(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(self.format(record))

    handler = Capture(logging.INFO)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    previous = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    yield lines
    root.removeHandler(handler)
    root.setLevel(previous)


async def _post(client: httpx.AsyncClient, path: str, body: dict[str, Any], **headers: str) -> int:
    reply = await client.post(path, json=body, headers=headers)
    assert reply.status_code in (200, 201, 202), reply.text
    position: int = reply.json()["position"]
    return position


async def _settled(pipeline: Pipeline, head: int) -> Samples:
    """Wait until the transfer has completed and everyone saw the log's head."""

    async def caught_up() -> bool:
        relay = await pipeline.metrics("relay")
        return value(relay, "chronicle_log_head_position") >= head and (
            value(relay, "chronicle_follower_lag_events", follower="relay") == 0
        )

    await wait_for(caught_up, 30, "the relay's probe to see the head with no lag")
    return await pipeline.metrics("relay")


async def test_metrics_move_by_the_scenario(
    spans: InMemorySpanExporter, embedded: Pipeline
) -> None:
    pipeline = embedded
    before = {name: await pipeline.metrics(name) for name in ("commands", "relay", "bridge")}
    a, b = f"a{uuid.uuid4().hex[:10]}", f"b{uuid.uuid4().hex[:10]}"
    async with (
        connect(f"ws://127.0.0.1:{pipeline.ports['bridge']}/v1/ws") as ws,
        httpx.AsyncClient(base_url=pipeline.url("commands"), timeout=10) as client,
    ):
        live = Subscriber(ws)
        await live.subscribe()
        await _post(client, "/v1/accounts", {"account_id": a, "owner": "Ann"})
        await _post(client, "/v1/accounts", {"account_id": b, "owner": "Bob"})
        await _post(client, f"/v1/accounts/{a}/deposits", {"amount": 100})
        transfer = await _post(
            client, "/v1/transfers", {"from_account": a, "to_account": b, "amount": 30}
        )
        events = await live.until(transfer)
        types = [e["type"] for e in events]
        completed = _has(live, "TransferCompleted")
        await wait_for(completed, 30, "the transfer to complete on the socket")
        head = live.events[-1]["position"]
        relay = await _settled(pipeline, head)
        async with connect(f"ws://127.0.0.1:{pipeline.ports['bridge']}/v1/ws") as late_ws:
            late = Subscriber(late_ws)
            await late.subscribe(after_position=0)
            backfilled = await late.until(head)
        bridge = await pipeline.metrics("bridge")
    commands, projector = await pipeline.metrics("commands"), await pipeline.metrics("projector")
    written = len(live.events)
    assert types[:3] == ["AccountOpened", "AccountOpened", "MoneyDeposited"]

    # Commands: HTTP counts by route template and status, and the store's appends.
    delta = _delta(before["commands"], commands)
    assert delta("http_requests_total", method="POST", route="/v1/accounts", status="201") == 2
    assert delta("http_requests_total", method="POST", route="/v1/transfers", status="202") == 1
    timed = delta(
        "http_request_duration_seconds_count", method="POST", route="/v1/accounts", status="201"
    )
    assert timed == 2
    assert delta("chronicle_eventstore_appended_events_total", backend="sqlite") == written
    assert delta("chronicle_eventstore_append_seconds_count", backend="sqlite") >= 4
    assert delta("chronicle_eventstore_append_batch_events_sum", backend="sqlite") == written

    # Relay: every event published and confirmed; no lag once settled.
    delta = _delta(before["relay"], relay)
    assert delta("chronicle_relay_published_events_total") == written
    assert value(relay, "chronicle_relay_confirmed_position") == head
    assert value(relay, "chronicle_log_oldest_write_transaction_seconds") == 0

    # Projector: every projection at the head, none halted.
    for name in ("account_summary", "account_transactions"):
        await wait_for(
            lambda n=name: _projected(pipeline, n, head), 30, f"projection {name} at the head"
        )
        assert value(projector, "chronicle_projection_halted", projection=name) == 0

    # Bridge: one live client got every event; the resuming one was backfilled.
    delta = _delta(before["bridge"], bridge)
    assert [e["position"] for e in backfilled] == [e["position"] for e in live.events]
    assert delta("bridge_events_total") == written
    assert delta("bridge_deliveries_total") == written
    assert delta("bridge_backfills_total") == 1
    assert delta("bridge_backfilled_events_total") >= 1
    assert value(bridge, "bridge_connections") == 1  # the late client, still open here
    assert value(bridge, "bridge_subscriptions") == 1


TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PROJECTIONS = {"account_summary", "account_transactions"}
STAGES = {
    "POST /v1/accounts/{account_id}/deposits",
    "eventstore.append",
    "relay.publish",
    "projection.apply",
    "bridge.deliver",
}


async def test_one_trace_from_the_post_to_the_websocket_push(
    spans: InMemorySpanExporter, json_logs: list[str], embedded: Pipeline
) -> None:
    pipeline = embedded
    account = f"t{uuid.uuid4().hex[:10]}"
    traceparent = f"00-{uuid.uuid4().hex}-00f067aa0ba902b7-01"
    trace_id = traceparent.split("-")[1]
    async with (
        connect(f"ws://127.0.0.1:{pipeline.ports['bridge']}/v1/ws") as ws,
        httpx.AsyncClient(base_url=pipeline.url("commands"), timeout=10) as client,
    ):
        subscriber = Subscriber(ws)
        await subscriber.subscribe()
        await _post(client, "/v1/accounts", {"account_id": account, "owner": "Tia"})
        position = await _post(
            client,
            f"/v1/accounts/{account}/deposits",
            {"amount": 5},
            traceparent=traceparent,
            **{"X-Correlation-Id": "corr-obs-1"},
        )
        pushed = (await subscriber.until(position))[-1]
    assert pushed["metadata"]["traceparent"].split("-")[1] == trace_id

    def stages() -> dict[str, list[Any]]:
        found: dict[str, list[Any]] = {}
        for span in spans.get_finished_spans():
            if span.context is not None and f"{span.context.trace_id:032x}" == trace_id:
                found.setdefault(span.name, []).append(span)
        return found

    def projections_applied(found: dict[str, list[Any]]) -> set[Any]:
        return {s.attributes["chronicle.projection"] for s in found.get("projection.apply", [])}

    async def every_stage() -> bool:
        found = stages()
        return set(found) >= STAGES and projections_applied(found) >= PROJECTIONS

    await wait_for(every_stage, 30, f"spans of every stage in trace {trace_id}")
    found = stages()
    post = found["POST /v1/accounts/{account_id}/deposits"][0]
    assert post.context is not None
    for name in STAGES - {post.name}:
        for span in found[name]:
            # Each stage is a child of the POST's server span: the append runs inside
            # the request, the others continue the traceparent stored with the event.
            assert span.parent is not None, name
            assert span.parent.span_id == post.context.span_id, name
    assert all(
        s.attributes and s.attributes["chronicle.event.position"] == position
        for s in found["bridge.deliver"]
    )

    parsed = [json.loads(line) for line in json_logs]
    assert all(
        {"level", "logger", "message", "trace_id", "correlation_id"} <= set(p) for p in parsed
    )
    traced = [p for p in parsed if p["trace_id"] == trace_id]
    assert traced, "no log line carried the POST's trace id"
    assert any(p["correlation_id"] == "corr-obs-1" for p in traced)


def _has(subscriber: Subscriber, event_type: str) -> Any:
    async def check() -> bool:
        if any(e["type"] == event_type for e in subscriber.events):
            return True
        try:
            async with asyncio.timeout(0.2):
                frame = json.loads(await subscriber.ws.recv())
        except TimeoutError:
            return False
        if frame["op"] == "event":
            subscriber.events.append(frame)
        return any(e["type"] == event_type for e in subscriber.events)

    return check


async def _projected(pipeline: Pipeline, projection: str, head: int) -> bool:
    found = await pipeline.metrics("projector")
    return value(found, "chronicle_projection_checkpoint", projection=projection) >= head


def _delta(before: Samples, after: Samples) -> Any:
    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    return delta
