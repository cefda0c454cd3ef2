"""The write side's tables in a dict: for unit tests and stores without a database of
their own. Nothing survives the process."""

from __future__ import annotations

import dataclasses
from uuid import UUID

from commands.storage.base import (
    CommandStorage,
    IdempotencyRecord,
    NewClaim,
    Snapshot,
    StoredResponse,
)


class MemoryCommandStorage(CommandStorage):
    """Single event loop, no awaits inside a method: each call is atomic."""

    def __init__(self) -> None:
        self.records: dict[str, IdempotencyRecord] = {}
        self.snapshots: dict[str, Snapshot] = {}

    async def claim(self, claim: NewClaim) -> tuple[bool, IdempotencyRecord]:
        existing = self.records.get(claim.key_hash)
        if existing is not None and existing.expires_at > claim.now:
            return False, existing
        record = IdempotencyRecord(
            claim.key_hash,
            claim.fingerprint,
            claim.claim_id,
            claim.request_path,
            claim.seen_version,
            None,
            claim.expires_at,
            claim.lease_until,
        )
        self.records[claim.key_hash] = record
        return True, record

    async def take_over(
        self, key_hash: str, claim_id: UUID, now: float, lease_until: float
    ) -> bool:
        record = self.records.get(key_hash)
        if record is None or record.claim_id != claim_id or record.response is not None:
            return False
        if record.lease_until > now:
            return False
        self.records[key_hash] = dataclasses.replace(record, lease_until=lease_until)
        return True

    async def end_lease(self, key_hash: str, claim_id: UUID, now: float) -> None:
        record = self.records.get(key_hash)
        if record is not None and record.claim_id == claim_id and record.response is None:
            self.records[key_hash] = dataclasses.replace(record, lease_until=now)

    async def complete(
        self, key_hash: str, claim_id: UUID, response: StoredResponse, *, durable: bool
    ) -> None:
        record = self.records.get(key_hash)
        if record is not None and record.claim_id == claim_id and record.response is None:
            self.records[key_hash] = dataclasses.replace(record, response=response)

    async def release(self, key_hash: str, claim_id: UUID) -> None:
        record = self.records.get(key_hash)
        if record is not None and record.claim_id == claim_id and record.response is None:
            del self.records[key_hash]

    async def purge_expired(self, now: float, limit: int = 1000) -> int:
        expired = [k for k, r in self.records.items() if r.expires_at <= now][:limit]
        for key in expired:
            del self.records[key]
        return len(expired)

    async def load_snapshot(self, stream_id: str) -> Snapshot | None:
        return self.snapshots.get(stream_id)

    async def save_snapshot(self, snapshot: Snapshot) -> None:
        current = self.snapshots.get(snapshot.stream_id)
        if (
            current is None
            or current.version < snapshot.version
            or current.state_version != snapshot.state_version
        ):
            self.snapshots[snapshot.stream_id] = snapshot

    async def ping(self) -> None:
        return None
