"""One client connection: authentication, its frames, its subscriptions, its queue.

Outbound frames take a fast path while the client keeps up (written to the socket's
buffer at once, never awaited) and otherwise wait in a bounded queue drained by the
connection's writer task. A client whose queue is full when the fan-out offers it a
frame is closed with 1013 and resumes with ``after_position``: the fan-out never waits
for one socket, so a slow client never slows the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque

from websockets.asyncio.server import ServerConnection, broadcast
from websockets.exceptions import ConnectionClosed

from eventstore.errors import StoreUnavailable
from ws_bridge import protocol
from ws_bridge.auth import Grant
from ws_bridge.batch import Batch
from ws_bridge.context import BridgeContext
from ws_bridge.errors import AuthError, BadFrame, Forbidden, Unauthenticated
from ws_bridge.fanout import Subscription
from ws_bridge.resume import backfill, start_backfill

log = logging.getLogger(__name__)


class Session:
    """Serves one connection from authentication to close (see the module docstring).

    An idle connection holds no task of its own besides its handler: the writer task
    exists only while frames are queued (memory per connection is what bounds how
    many clients a replica holds).
    """

    __slots__ = (
        "_backfills",
        "_bad_frames",
        "_closer",
        "_closing",
        "_context",
        "_expiry",
        "_grant",
        "_limit",
        "_queue",
        "_room",
        "_settings",
        "_subs",
        "_write_limit",
        "_writer",
        "_ws",
    )

    def __init__(self, ws: ServerConnection, context: BridgeContext) -> None:
        self._ws = ws
        self._context = context
        self._settings = context.settings
        self._limit = context.settings.bridge_queue_size
        self._write_limit = context.settings.bridge_write_limit
        self._queue: deque[bytes] = deque()
        self._writer: asyncio.Task[None] | None = None
        self._room: asyncio.Event | None = None
        self._closing = False
        self._closer: asyncio.Task[None] | None = None
        self._subs: dict[str, Subscription] = {}
        self._backfills: dict[str, asyncio.Task[None]] = {}
        self._bad_frames = 0
        self._grant: Grant | None = None
        self._expiry: asyncio.TimerHandle | None = None

    async def run(self) -> None:
        """Serve until the connection closes; then forget every subscription."""
        metrics = self._context.metrics
        metrics.connections.inc()
        try:
            self._grant = await self._authenticate()
            if self._grant is not None:
                self._expiry = self._close_at_expiry(self._grant)
                await self._read_loop()
        except ConnectionClosed:
            pass
        finally:
            metrics.connections.dec()
            await self._teardown()

    # -- outbound ---------------------------------------------------------------

    def push(self, frame: bytes, batch: Batch | None = None) -> bool:
        """Send ``frame`` now (or with ``batch``) or queue it, never waiting; on a full
        queue, close with 1013."""
        if self._closing:
            return False
        if self._writer is None and self._has_room():
            # Nothing is queued ahead (no writer) and the socket buffer has room.
            if batch is None:
                broadcast([self._ws], frame, text=True)
            else:
                batch.add(frame, self._ws)
            return True
        if len(self._queue) >= self._limit:
            self.overflow()
            return False
        self._enqueue(frame)
        return True

    async def put(self, frame: bytes) -> None:
        """Queue ``frame``, waiting for room (backfills, never the fan-out)."""
        while len(self._queue) >= self._limit and not self._closing:
            if self._room is None:
                self._room = asyncio.Event()
            self._room.clear()
            await self._room.wait()
        self.put_nowait(frame)

    def put_nowait(self, frame: bytes) -> None:
        """Send or queue ``frame`` now, after whatever is queued, even past the bound."""
        if self._closing:
            return
        if self._writer is None and self._has_room():
            broadcast([self._ws], frame, text=True)
        else:
            self._enqueue(frame)

    def _enqueue(self, frame: bytes) -> None:
        self._queue.append(frame)
        if self._writer is None:
            self._writer = asyncio.create_task(self._drain())

    async def _drain(self) -> None:
        """Send queued frames in order; the task ends when the queue is empty."""
        try:
            while self._queue:
                frame = self._queue.popleft()
                if self._room is not None:
                    self._room.set()
                await self._ws.send(frame, text=True)
        except ConnectionClosed:
            self._queue.clear()
        finally:
            self._writer = None

    def overflow(self) -> None:
        if not self._closing:
            self._context.metrics.slow_closes.inc()
            self.close_soon(protocol.CLOSE_TOO_SLOW, "too slow: resume with after_position")

    def close_soon(self, code: int, reason: str) -> None:
        """Start closing with ``code``; queued frames are dropped (the client resumes)."""
        if self._closing:
            return
        self._closing = True
        self._queue.clear()
        if self._room is not None:
            self._room.set()
        self._closer = asyncio.create_task(self._ws.close(code, reason))

    def _has_room(self) -> bool:
        return self._ws.transport.get_write_buffer_size() < self._write_limit

    # -- inbound ----------------------------------------------------------------

    async def _authenticate(self) -> Grant | None:
        """The client's grant: from the header, else from a first auth frame in time."""
        auth = self._context.authenticator
        if not auth.enabled:
            return Grant("anonymous")
        header = self._ws.request.headers.get("Authorization") if self._ws.request else None
        try:
            if header is not None:
                return await auth.from_header(header)
            return await self._auth_frame()
        except AuthError as exc:
            self._context.metrics.auth_failures.inc()
            self.push(protocol.error(exc.code, str(exc)))
            self.close_soon(protocol.CLOSE_AUTH, exc.code)
            return None

    def _close_at_expiry(self, grant: Grant) -> asyncio.TimerHandle | None:
        """Close with 1008 when the token expires: a grant is only as good as its token."""
        if grant.expires_at is None:
            return None
        loop = asyncio.get_running_loop()
        delay = max(0.0, grant.expires_at - time.time())
        return loop.call_at(
            loop.time() + delay, self.close_soon, protocol.CLOSE_AUTH, "token expired"
        )

    async def _auth_frame(self) -> Grant:
        try:
            async with asyncio.timeout(self._settings.bridge_auth_timeout):
                message = await self._ws.recv()
        except TimeoutError as exc:
            raise Unauthenticated("no auth frame in time") from exc
        try:
            frame = protocol.decode(message)
        except BadFrame as exc:
            raise Unauthenticated(f"the first frame must be auth: {exc}") from exc
        if not isinstance(frame, protocol.Auth):
            raise Unauthenticated("the first frame must be {'op':'auth','token':...}")
        return await self._context.authenticator.from_token(frame.token)

    async def _read_loop(self) -> None:
        async for message in self._ws:
            if self._closing:
                return
            try:
                frame = protocol.decode(message)
            except BadFrame as exc:
                self._bad_frame(exc)
                continue
            await self._handle(frame)

    def _bad_frame(self, exc: BadFrame) -> None:
        self._context.metrics.bad_frames.inc()
        self._bad_frames += 1
        if self._bad_frames > 1:
            self.close_soon(protocol.CLOSE_BAD_FRAME, "repeated malformed frames")
        else:
            self.push(protocol.error(exc.code, str(exc)))

    async def _handle(self, frame: protocol.ClientFrame) -> None:
        if isinstance(frame, protocol.Subscribe):
            await self._subscribe(frame)
        elif isinstance(frame, protocol.Unsubscribe):
            await self._unsubscribe(frame.id)
        elif isinstance(frame, protocol.Ping):
            self.push(protocol.pong())
        else:
            self.push(protocol.error("already_authenticated", "auth is only the first frame"))

    async def _subscribe(self, frame: protocol.Subscribe) -> None:
        error = self._refusal(frame)
        if error is not None:
            self.push(protocol.error(error[0], error[1], frame.id))
            return
        context = self._context
        sub = Subscription(frame.id, frame.filter, self, self._settings.bridge_resume_buffer)
        if frame.after_position is not None:
            start_backfill(sub, frame.after_position, self._settings.bridge_resume_buffer)
        # No await from here to the fan-out registration: the head position we report
        # is exactly where this subscription's live feed starts.
        head = context.hub.position
        if sub.live:
            sub.cursor = head
        context.fanout.add(sub)
        self._subs[sub.id] = sub
        context.metrics.subscriptions.inc()
        self.push(protocol.subscribed(sub.id, head))
        if frame.after_position is not None:
            task = asyncio.create_task(self._backfill(sub, frame.after_position))
            self._backfills[sub.id] = task

    def _refusal(self, frame: protocol.Subscribe) -> tuple[str, str] | None:
        if frame.id in self._subs:
            return "duplicate_id", f"subscription {frame.id!r} exists"
        if len(self._subs) >= self._settings.bridge_max_subscriptions:
            return "too_many_subscriptions", "unsubscribe first"
        assert self._grant is not None
        try:
            self._grant.check(frame.filter)
        except Forbidden as exc:
            return exc.code, str(exc)
        return None

    async def _backfill(self, sub: Subscription, after: int) -> None:
        try:
            await backfill(self._context, sub, after, self)
        except StoreUnavailable as exc:
            log.warning("bridge: backfill of %r failed: %s", sub.id, exc)
            self.push(protocol.error("store_unavailable", "resume later", sub.id))
            self.close_soon(protocol.CLOSE_TOO_SLOW, "event store unavailable")
        except Exception:
            # One client's failure must not end the replica: close it, keep serving.
            log.exception("bridge: backfill of %r crashed", sub.id)
            self.close_soon(1011, "internal error")

    async def _unsubscribe(self, sub_id: str) -> None:
        sub = self._subs.pop(sub_id, None)
        if sub is None:
            self.push(protocol.error("unknown_subscription", f"no {sub_id!r}", sub_id))
            return
        await self._forget(sub)
        self.push(protocol.unsubscribed(sub_id))

    async def _forget(self, sub: Subscription) -> None:
        self._context.fanout.remove(sub)
        self._context.metrics.subscriptions.dec()
        task = self._backfills.pop(sub.id, None)
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _teardown(self) -> None:
        self._closing = True
        if self._expiry is not None:
            self._expiry.cancel()
        if self._room is not None:
            self._room.set()
        for sub in list(self._subs.values()):
            await self._forget(sub)
        self._subs.clear()
        writer = self._writer
        if writer is not None:
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await writer
        if self._closer is not None:
            with contextlib.suppress(ConnectionClosed):
                await self._closer
