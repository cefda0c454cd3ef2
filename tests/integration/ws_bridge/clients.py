"""A test client that behaves as the protocol asks: it keeps the last position it was
given and, when the connection drops (1006, 1012, 1013), reconnects and resumes with
``after_position``. It records every event and every close code."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from eventstore.model import RecordedEvent

RESUMABLE = {1006, 1011, 1012, 1013}


class Tracker:
    """One subscription kept alive across reconnects."""

    def __init__(
        self,
        url: str,
        filter_: dict[str, list[str]],
        *,
        after_position: int | None = None,
        headers: dict[str, str] | None = None,
        name: str = "t",
    ) -> None:
        self.url = url
        self.filter = filter_
        self.start_after = after_position
        self.headers = headers
        self.name = name
        self.positions: list[int] = []
        self.received_at: dict[int, float] = {}
        self.closes: list[int] = []
        self.connections = 0
        self.last = after_position
        self.subscribed = asyncio.Event()
        self.caught_up = asyncio.Event()
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._ws: ClientConnection | None = None
        self._closing = False

    def matches(self, event: RecordedEvent) -> bool:
        streams, categories = self.filter.get("streams"), self.filter.get("categories")
        types = self.filter.get("types")
        return (
            (not streams or event.stream_id in streams)
            and (not categories or event.category in categories)
            and (not types or event.type in types)
        )

    def start(self) -> Tracker:
        self._task = asyncio.create_task(self._run(), name=f"tracker {self.name}")
        return self

    async def _run(self) -> None:
        while not self._closing:
            try:
                await self._session()
            except (OSError, InvalidHandshake, InvalidStatus, TimeoutError):
                await asyncio.sleep(0.1)  # the load balancer has no replica for us yet
            except ConnectionClosed as exc:
                code = exc.rcvd.code if exc.rcvd else 1006
                self.closes.append(code)
                if code not in RESUMABLE or self._closing:
                    return

    async def _session(self) -> None:
        async with asyncio.timeout(10):
            ws = await connect(
                self.url, additional_headers=self.headers, compression=None, open_timeout=5
            )
        self._ws = ws
        self.connections += 1
        frame: dict[str, Any] = {"op": "subscribe", "id": self.name, "filter": self.filter}
        if self.last is not None:
            frame["after_position"] = self.last
        await ws.send(json.dumps(frame))
        async for message in ws:
            self._on(json.loads(message))
        self.closes.append(ws.close_code or 1000)
        self._closing = True

    def _on(self, frame: dict[str, Any]) -> None:
        op = frame["op"]
        if op == "event":
            self.positions.append(frame["position"])
            self.received_at.setdefault(frame["position"], time.perf_counter())
            self.last = frame["position"]
        elif op == "subscribed":
            if self.last is None:
                self.last = self.start_after = frame["head_position"]
            self.subscribed.set()
        elif op == "caught_up":
            self.last = max(self.last or 0, frame["position"])
            self.caught_up.set()
        self._changed.set()

    async def wait_for(self, position: int, seconds: float = 30.0) -> None:
        """Return once an event at or past ``position`` arrived."""
        async with asyncio.timeout(seconds):
            while not self.positions or self.positions[-1] < position:
                self._changed.clear()
                await self._changed.wait()

    async def close(self) -> None:
        self._closing = True
        if self._ws is not None:
            await self._ws.close()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
