"""Applying events to a read model exactly once: the projection's changes and its
checkpoint commit in one transaction, and events at or below the checkpoint are
dropped inside that transaction, so a duplicate can never be applied twice."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Table
from sqlalchemy.exc import DBAPIError, DisconnectionError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine

from eventstore import RecordedEvent
from projections.checkpoints import advance_checkpoint, ensure_checkpoint, lock_checkpoint
from projections.errors import ReadModelUnavailable
from projections.projection import Projection, decode


def is_unavailable(exc: BaseException) -> bool:
    """Whether ``exc`` means the read database could not be reached (retry later) rather
    than that applying the events failed (a bug or bad data: counts toward poison)."""
    if isinstance(exc, OperationalError | InterfaceError | DisconnectionError):
        return True
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    if type(getattr(exc, "orig", None)).__name__ == "InvalidCachedStatementError":
        # A replay swapped tables under a cached prepared statement: the dialect has
        # already refreshed its caches, so a retry succeeds; not the event's fault.
        return True
    return isinstance(exc, OSError | TimeoutError | ConnectionError)


class Applier:
    """Commits batches of events into one projection's tables under one checkpoint.

    The live runner uses the live tables and the projection's name; a replay uses the
    shadow tables and a checkpoint of their own.
    """

    def __init__(
        self,
        projection: Projection,
        engine: AsyncEngine,
        *,
        tables: dict[str, Table] | None = None,
        checkpoint: str | None = None,
    ) -> None:
        self.projection = projection
        self.engine = engine
        self.tables = tables if tables is not None else projection.tables()
        self.checkpoint_name = checkpoint or projection.name

    async def ensure_checkpoint(self) -> None:
        async with self.engine.begin() as conn:
            await ensure_checkpoint(conn, self.checkpoint_name)

    async def commit(self, records: Sequence[RecordedEvent]) -> int:
        """Apply the events of ``records`` (position order) above the checkpoint, move
        the checkpoint to the last of them, in one transaction; return the checkpoint.

        Events of types the projection does not handle only move the checkpoint.
        Raises ReadModelUnavailable when the database cannot be reached; any other
        error comes from applying the events (the transaction is rolled back).
        """
        try:
            async with self.engine.begin() as conn:
                if not records:
                    return await lock_checkpoint(conn, self.checkpoint_name)
                # Locked and moved first, in one round trip: the move commits with the
                # changes below or rolls back with them, like a save at the end would.
                last = records[-1].position
                current = await advance_checkpoint(conn, self.checkpoint_name, last)
                if last <= current:
                    return current
                handles = self.projection.handles
                fresh = [decode(r) for r in records if r.position > current and r.type in handles]
                if fresh:
                    await self.projection.apply(conn, self.tables, fresh)
                return last
        except Exception as exc:
            if is_unavailable(exc):
                raise ReadModelUnavailable(f"read database unavailable: {exc}") from exc
            raise
