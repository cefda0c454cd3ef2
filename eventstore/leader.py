"""Leader election: exactly one member of a group works; the others stand by.

Relays use it (one publishes), and so does the write side's transfer process manager
(one drives the transfers); ``role`` keeps their locks apart.

* PostgreSQL: a session advisory lock held on a dedicated connection. PostgreSQL frees
  it the moment that session ends, so when the leader dies (SIGKILL included) its
  socket closes, the server ends the session and a standby's next try wins. The
  holder checks its connection every second and gives up the lead as soon as it
  fails, because then it can no longer know whether it still holds the lock.
* SQLite file: an exclusive ``flock`` on a file next to the database. The kernel frees
  it when the holder's process ends, however it ends. Only processes on one machine
  can share an SQLite file, so a local lock is enough.
* SQLite ``:memory:``: the database belongs to one store object in one process, so
  there is a single member by construction and it leads at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import logging
import os
from collections.abc import Coroutine
from typing import Any, Protocol

import asyncpg

from eventstore.urls import mask_password, parse_database_url

log = logging.getLogger(__name__)

_PG_ERRORS = (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError)


class Leadership(Protocol):
    """Acquire the lead, learn when it is lost, give it back."""

    @property
    def lost(self) -> asyncio.Event:
        """Set when the lead acquired last can no longer be vouched for."""

    async def acquire(self, stop: asyncio.Event) -> bool:
        """Wait until this member leads (True) or ``stop`` is set (False)."""

    async def release(self) -> None:
        """Give the lead up (no-op when not leading)."""


async def while_leading(
    work: Coroutine[Any, Any, None],
    lost: asyncio.Event,
    *,
    stop: asyncio.Event | None = None,
    drain: float = 0.0,
) -> None:
    """Run ``work`` until it ends, and cancel it the moment ``lost`` is set: a member
    that can no longer vouch for its lead must not take another step. Once ``stop``
    is set, ``work`` (which watches ``stop`` itself) has ``drain`` seconds to finish.
    What ``work`` raises is raised here."""
    task = asyncio.ensure_future(work)
    watch_lost = asyncio.ensure_future(lost.wait())
    watchers = {watch_lost}
    if stop is not None:
        watchers.add(asyncio.ensure_future(stop.wait()))
    try:
        await asyncio.wait({task, *watchers}, return_when=asyncio.FIRST_COMPLETED)
        if stop is not None and stop.is_set() and not task.done() and not lost.is_set():
            await asyncio.wait(
                {task, watch_lost}, timeout=drain, return_when=asyncio.FIRST_COMPLETED
            )
    finally:
        for watcher in watchers:
            watcher.cancel()
        if not task.done():
            task.cancel()
            # wait() neither passes a cancel of the caller's on to the task (cancelled
            # already) nor swallows it: a caller cancelled meanwhile stays cancelled.
            await asyncio.wait({task})
        failed = None if task.cancelled() else task.exception()
    if failed is not None:
        raise failed


async def _pause(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)


class SoleLeadership:
    """The only possible member: leads at once, never loses it."""

    def __init__(self) -> None:
        self._lost = asyncio.Event()

    @property
    def lost(self) -> asyncio.Event:
        return self._lost

    async def acquire(self, stop: asyncio.Event) -> bool:
        return not stop.is_set()

    async def release(self) -> None:
        return None


class FileLeadership:
    """An exclusive, non-blocking ``flock`` on ``path``, retried while someone holds it."""

    def __init__(self, path: str, retry_interval: float = 0.5) -> None:
        self._path = path
        self._retry_interval = retry_interval
        self._fd: int | None = None
        self._lost = asyncio.Event()

    @property
    def lost(self) -> asyncio.Event:
        return self._lost

    async def acquire(self, stop: asyncio.Event) -> bool:
        while not stop.is_set():
            if await asyncio.to_thread(self._try_lock):
                return True
            await _pause(stop, self._retry_interval)
        return False

    def _try_lock(self) -> bool:
        fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._fd = fd
        return True

    async def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            # Closing the descriptor drops the flock.
            await asyncio.to_thread(os.close, fd)


def lock_key(name: str, role: str = "relay") -> int:
    """A stable signed 64-bit advisory lock key for the group ``name`` of ``role``."""
    digest = hashlib.sha256(f"chronicle.{role}:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class PostgresLeadership:
    """A session advisory lock on a connection of its own (see the module docstring)."""

    def __init__(
        self,
        dsn: str,
        key: int,
        *,
        retry_interval: float = 0.5,
        keepalive_interval: float = 1.0,
        timeout: float = 2.0,
        role: str = "relay",
    ) -> None:
        self._dsn = dsn
        self._key = key
        self._role = role
        self._retry_interval = retry_interval
        self._keepalive_interval = keepalive_interval
        self._timeout = timeout
        self._conn: asyncpg.Connection | None = None
        self._watchdog: asyncio.Task[None] | None = None
        self._lost = asyncio.Event()

    @property
    def lost(self) -> asyncio.Event:
        return self._lost

    async def acquire(self, stop: asyncio.Event) -> bool:
        while not stop.is_set():
            try:
                if await self._try_lock():
                    self._lost = asyncio.Event()
                    self._watchdog = asyncio.create_task(self._watch())
                    return True
            except _PG_ERRORS as exc:
                log.warning("%s lock: PostgreSQL unavailable: %r", self._role, exc)
                await self._disconnect()
            await _pause(stop, self._retry_interval)
        return False

    async def _try_lock(self) -> bool:
        if self._conn is None or self._conn.is_closed():
            self._conn = await asyncpg.connect(
                self._dsn,
                timeout=self._timeout,
                # Keepalives let the server end the session, and free the lock, even
                # when this host vanishes without closing its socket.
                server_settings={
                    "application_name": f"chronicle-{self._role}-lock",
                    "tcp_keepalives_idle": "5",
                    "tcp_keepalives_interval": "2",
                    "tcp_keepalives_count": "3",
                },
            )
        got = await self._conn.fetchval(
            "SELECT pg_try_advisory_lock($1)", self._key, timeout=self._timeout
        )
        return bool(got)

    async def _watch(self) -> None:
        """Prove the session (and so the lock) is alive every keepalive interval."""
        conn = self._conn
        while conn is not None:
            await asyncio.sleep(self._keepalive_interval)
            try:
                await conn.fetchval("SELECT 1", timeout=self._timeout)
            except _PG_ERRORS as exc:
                log.error("%s lock: lost the lock connection, standing down: %r", self._role, exc)
                self._lost.set()
                return

    async def release(self) -> None:
        watchdog, self._watchdog = self._watchdog, None
        if watchdog is not None:
            watchdog.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watchdog
        # Ending the session releases the lock whatever state the connection is in.
        await self._disconnect()

    async def _disconnect(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                await asyncio.wait_for(conn.close(), self._timeout)
            except _PG_ERRORS:
                conn.terminate()


def elected(
    database_url: str,
    name: str,
    *,
    role: str = "relay",
    retry_interval: float = 0.5,
    keepalive_interval: float = 1.0,
) -> Leadership:
    """The leader election that fits the event store at ``database_url``, for the group
    ``name`` of ``role``."""
    target = parse_database_url(database_url)
    if target.backend == "postgresql":
        log.debug("%s lock: advisory lock on %s", role, mask_password(target.dsn))
        return PostgresLeadership(
            target.dsn,
            lock_key(name, role),
            retry_interval=retry_interval,
            keepalive_interval=keepalive_interval,
            role=role,
        )
    if target.in_memory:
        return SoleLeadership()
    # Relays' lock files predate other roles and keep their names.
    group = name if role == "relay" else f"{role}.{name}"
    return FileLeadership(f"{target.path}.{group}.lock", retry_interval)
