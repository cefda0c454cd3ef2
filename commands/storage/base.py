"""The write side's own tables, behind one small interface: idempotency records and
snapshots. They live in the event store's database (same PostgreSQL database, or the
same SQLite file / ``:memory:`` connection), so one backup holds everything.

Times are seconds since the epoch, passed in by the caller (one clock, testable).
"""

from __future__ import annotations

import abc
import json
from dataclasses import dataclass
from typing import Any
from uuid import UUID


@dataclass(frozen=True, slots=True)
class StoredResponse:
    """An HTTP response kept for an idempotency key: replayed verbatim."""

    status: int
    body: bytes
    headers: dict[str, str]

    def to_json(self) -> str:
        return json.dumps({"body": self.body.decode(), "headers": self.headers})

    @classmethod
    def from_json(cls, status: int, text: str) -> StoredResponse:
        stored: dict[str, Any] = json.loads(text)
        return cls(status, stored["body"].encode(), dict(stored["headers"]))


@dataclass(frozen=True, slots=True)
class IdempotencyRecord:
    """One key's record: which request claimed it, and its response once finished.

    ``claim_id`` seeds the ids of the events the request appends, so whoever finishes
    the request (the first owner, or one taking over after it died) writes the same
    events. ``seen_version`` is a version the target stream had reached before the
    claim (0 if unknown); the request's events, if any were appended, come after it.
    ``request_path`` names the request, for people reading the table.
    """

    key_hash: str
    fingerprint: str
    claim_id: UUID
    request_path: str
    seen_version: int
    response: StoredResponse | None
    expires_at: float
    lease_until: float


@dataclass(frozen=True, slots=True)
class NewClaim:
    key_hash: str
    fingerprint: str
    claim_id: UUID
    request_path: str
    seen_version: int
    now: float
    expires_at: float
    lease_until: float


@dataclass(frozen=True, slots=True)
class Snapshot:
    """An aggregate's state at ``version``, serialised as JSON by its model."""

    stream_id: str
    version: int
    state_version: int
    state: str


class CommandStorage(abc.ABC):
    """Idempotency records and snapshots. Errors are the event store's
    (StoreUnavailable, SchemaNotReady, EventStoreError)."""

    @abc.abstractmethod
    async def claim(self, claim: NewClaim) -> tuple[bool, IdempotencyRecord]:
        """Record ``claim`` unless the key holds a record that has not expired.

        Returns ``(True, the new record)`` when the caller now owns the key, else
        ``(False, the existing record)``. Two concurrent claims: exactly one wins.
        """

    @abc.abstractmethod
    async def take_over(
        self, key_hash: str, claim_id: UUID, now: float, lease_until: float
    ) -> bool:
        """Extend an unfinished claim whose lease ran out (its owner is presumed dead).
        True when the caller now owns it; False if it finished, or someone else won."""

    @abc.abstractmethod
    async def end_lease(self, key_hash: str, claim_id: UUID, now: float) -> None:
        """End an unfinished claim's lease at ``now``: at once, so the next request with
        the key takes it over (its owner failed with an unknown outcome); or later, to
        extend the lease of an owner still running."""

    @abc.abstractmethod
    async def complete(
        self, key_hash: str, claim_id: UUID, response: StoredResponse, *, durable: bool
    ) -> None:
        """Store the response of the claim (first completion wins).

        ``durable=False`` may return before the write reaches disk: only for responses
        the log can rebuild (the events were appended durably before).
        """

    @abc.abstractmethod
    async def release(self, key_hash: str, claim_id: UUID) -> None:
        """Forget an unfinished claim (its request failed transiently; retry allowed)."""

    @abc.abstractmethod
    async def purge_expired(self, now: float, limit: int = 1000) -> int:
        """Delete up to ``limit`` expired records; return how many were deleted."""

    @abc.abstractmethod
    async def load_snapshot(self, stream_id: str) -> Snapshot | None:
        """The stream's latest snapshot, if any."""

    @abc.abstractmethod
    async def save_snapshot(self, snapshot: Snapshot) -> None:
        """Keep ``snapshot`` unless a snapshot at a later version is already stored."""

    @abc.abstractmethod
    async def ping(self) -> None:
        """Return when the tables answer; raise StoreUnavailable/SchemaNotReady otherwise."""

    async def close(self) -> None:
        """Release connections (the default has none of its own)."""
        return None
