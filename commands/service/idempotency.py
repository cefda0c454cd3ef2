"""Idempotency keys: the same key and request give the first response again, once.

The protocol (docs/commands.md, "Idempotency"):

1. Claim the key: one row per (actor, key) holding the request's fingerprint and a
   random ``claim_id``. The database's unique key makes exactly one of two concurrent
   requests the owner.
2. The owner runs the command with event ids derived from ``claim_id``, then stores the
   response. Any later request with the key gets that response, writing nothing; a
   different fingerprint is IdempotencyKeyReused.
3. A request finding the key claimed but unfinished waits (bounded) for the response.
   A running owner keeps its lease (:meth:`IdempotencyGuard.renew_leases`, every third
   of it, for runs older than that), so a slow one is never taken over; when the
   lease runs out (the owner died, or failed with an unknown outcome), one
   waiter takes the claim over: it first looks for the events of the first run in the
   stream (same derived ids) and answers from them; otherwise it runs the command with
   the same ids, so even a late first owner cannot make it write twice.

Keys expire after ``ttl`` seconds; a new request with an expired key starts afresh
(with a new ``claim_id``, hence new event ids).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from uuid import UUID, uuid4

from commands.errors import (
    ConcurrencyConflict,
    IdempotencyKeyInProgress,
    IdempotencyKeyReused,
)
from commands.storage.base import CommandStorage, IdempotencyRecord, NewClaim, StoredResponse
from eventstore import EventStoreError

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class KeyedRequest:
    """A request carrying an Idempotency-Key."""

    actor: str
    key: str
    fingerprint: str
    request_path: str
    seen_version: int

    @property
    def key_hash(self) -> str:
        # Keys are scoped by actor: two clients choosing the same key never collide.
        return hashlib.sha256(f"{self.actor}\x00{self.key}".encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Run:
    """One execution of a keyed request: derive event ids from ``claim_id``.

    ``recovering`` is true when this run took over from an owner that may have
    appended already; ``seen_version`` bounds where its events could be.
    """

    claim_id: UUID
    seen_version: int
    recovering: bool


Execute = Callable[[Run], Awaitable[StoredResponse]]


def fingerprint(*parts: str | bytes) -> str:
    """A digest of everything that makes two requests "the same request"."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode() if isinstance(part, str) else part)
        digest.update(b"\x00")
    return digest.hexdigest()


class IdempotencyGuard:
    """Runs keyed requests at most once per key (see the module docstring)."""

    def __init__(
        self,
        storage: CommandStorage,
        *,
        ttl: float = 86_400.0,
        lease: float = 10.0,
        max_wait: float = 10.0,
        poll: float = 0.05,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._storage = storage
        self._ttl = ttl
        self._lease = lease
        self._max_wait = max_wait
        self._poll = poll
        self._clock = clock
        # Requests owned by this process, so local waiters wake as soon as they finish.
        self._running: dict[str, asyncio.Event] = {}
        # Responses being stored after the answer went out (kept until done).
        self._completing: set[asyncio.Task[None]] = set()
        # Claims whose command is running here: key hash -> (claim id, monotonic start).
        self._owned: dict[str, tuple[UUID, float]] = {}

    @property
    def renew_interval(self) -> float:
        """How often :meth:`renew_leases` should run: a third of the lease."""
        return self._lease / 3

    async def renew_leases(self) -> None:
        """Extend the lease of every claim whose command has run here for longer than
        :attr:`renew_interval`: a live owner, however slow its database, is never taken
        over (a taker could decide otherwise, e.g. refuse what the owner writes)."""
        started_before = time.monotonic() - self.renew_interval
        for key_hash, (claim_id, started) in list(self._owned.items()):
            if started > started_before:
                continue
            try:
                await self._storage.end_lease(key_hash, claim_id, self._clock() + self._lease)
            except (EventStoreError, OSError) as exc:
                log.warning("could not renew the lease of an idempotency claim: %s", exc)

    async def run(self, request: KeyedRequest, execute: Execute) -> tuple[StoredResponse, bool]:
        """The response for ``request``, and whether it is a replay of a stored one.

        Raises IdempotencyKeyReused, IdempotencyKeyInProgress (still running after
        ``max_wait``), or what ``execute`` raises for outcomes not worth storing.
        """
        deadline = time.monotonic() + self._max_wait
        while True:
            now = self._clock()
            owned, record = await self._storage.claim(self._new_claim(request, now))
            if owned:
                return await self._execute(record, execute, recovering=False), False
            if record.fingerprint != request.fingerprint:
                raise IdempotencyKeyReused("this Idempotency-Key was used for another request")
            if record.response is not None:
                return record.response, True
            if record.lease_until <= now and await self._storage.take_over(
                record.key_hash, record.claim_id, now, now + self._lease
            ):
                return await self._execute(record, execute, recovering=True), False
            if time.monotonic() >= deadline:
                raise IdempotencyKeyInProgress("the first request with this key is running")
            await self._wait_for(record.key_hash)

    def _new_claim(self, request: KeyedRequest, now: float) -> NewClaim:
        return NewClaim(
            key_hash=request.key_hash,
            fingerprint=request.fingerprint,
            claim_id=uuid4(),
            request_path=request.request_path,
            seen_version=request.seen_version,
            now=now,
            expires_at=now + self._ttl,
            lease_until=now + self._lease,
        )

    async def _wait_for(self, key_hash: str) -> None:
        running = self._running.get(key_hash)
        if running is None:
            # The owner is another process: poll the row.
            await asyncio.sleep(self._poll)
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self._lease):
                await running.wait()

    async def _execute(
        self, record: IdempotencyRecord, execute: Execute, *, recovering: bool
    ) -> StoredResponse:
        done = self._running.setdefault(record.key_hash, asyncio.Event())
        try:
            response = await self._run_once(record, execute, recovering)
            if response.status >= 300:
                # A refusal cannot be rebuilt from the log: on disk before the answer.
                await self._storage.complete(
                    record.key_hash, record.claim_id, response, durable=True
                )
        except BaseException:
            self._finish(record.key_hash, done)
            raise
        if response.status >= 300:
            self._finish(record.key_hash, done)
        else:
            # A success can be rebuilt from the log (its events carry the claim's ids),
            # so the answer need not wait for the response to be stored.
            self._complete_later(record, response, done)
        return response

    async def _run_once(
        self, record: IdempotencyRecord, execute: Execute, recovering: bool
    ) -> StoredResponse:
        run = Run(record.claim_id, record.seen_version, recovering)
        self._owned[record.key_hash] = (record.claim_id, time.monotonic())
        try:
            try:
                return await execute(run)
            finally:
                # Over, whatever the outcome: nothing to renew (before any lease change
                # below, so a renewal cannot undo the end of the lease).
                self._owned.pop(record.key_hash, None)
        except ConcurrencyConflict:
            if recovering:
                # Nothing written by this run, but the owner it took over from may still
                # be running and commit under the same event ids: keep the claim (the
                # next request recovers from the log), or a retry would get a claim of
                # its own, new event ids, and write the command a second time.
                await self._end_lease(record)
            else:
                # Every attempt lost its append: nothing was written, the key is free.
                await self._storage.release(record.key_hash, record.claim_id)
            raise
        except BaseException:
            # Unknown outcome (the append may have committed): keep the claim, end its
            # lease now, so the client's retry takes over and recovers at once.
            await self._end_lease(record)
            raise

    def _complete_later(
        self, record: IdempotencyRecord, response: StoredResponse, done: asyncio.Event
    ) -> None:
        task = asyncio.create_task(self._complete(record, response, done))
        self._completing.add(task)
        task.add_done_callback(self._completing.discard)

    async def _complete(
        self, record: IdempotencyRecord, response: StoredResponse, done: asyncio.Event
    ) -> None:
        try:
            await self._storage.complete(record.key_hash, record.claim_id, response, durable=False)
        except Exception as exc:
            # Recovered like a crash: once the lease ends, the next request with the key
            # takes the claim over and answers from the events in the log.
            log.warning("storing an idempotent response failed: %r", exc)
        finally:
            self._finish(record.key_hash, done)

    def _finish(self, key_hash: str, done: asyncio.Event) -> None:
        done.set()
        if self._running.get(key_hash) is done:
            del self._running[key_hash]

    async def drain(self) -> None:
        """Wait until every response still being stored is stored (at shutdown)."""
        while self._completing:
            await asyncio.gather(*self._completing, return_exceptions=True)

    async def _end_lease(self, record: IdempotencyRecord) -> None:
        try:
            await self._storage.end_lease(record.key_hash, record.claim_id, self._clock())
        except (EventStoreError, OSError) as exc:
            log.warning("could not end the lease of an idempotency claim: %s", exc)

    async def purge_expired(self) -> int:
        """Delete expired keys, in batches; return how many."""
        total = 0
        while (deleted := await self._storage.purge_expired(self._clock())) > 0:
            total += deleted
        return total
