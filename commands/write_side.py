"""Wiring of the write side: one object holding the store, the write side's tables, the
state loader, the command handler, the idempotency guard and the transfer manager.

:func:`open_write_side` is used by the HTTP app's lifespan; tests use it directly.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry

from commands.process_manager import TransferProcessManager
from commands.service.handler import CommandHandler
from commands.service.idempotency import IdempotencyGuard
from commands.service.metrics import WriteSideMetrics
from commands.service.state import StateLoader
from commands.settings import CommandsSettings
from commands.storage import CommandStorage, open_command_storage
from eventstore import EventStore, EventStoreError, open_event_store
from eventstore.leader import Leadership, elected

log = logging.getLogger(__name__)

_PURGE_INTERVAL = 600.0


@dataclass
class WriteSide:
    """Everything a command needs, opened once per process."""

    store: EventStore
    storage: CommandStorage
    metrics: WriteSideMetrics
    states: StateLoader
    handler: CommandHandler
    guard: IdempotencyGuard
    manager: TransferProcessManager | None = None
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    async def ping(self) -> None:
        """Readiness: the store and the write side's tables answer."""
        await self.store.ping()
        await self.storage.ping()


def build_write_side(
    settings: CommandsSettings,
    store: EventStore,
    storage: CommandStorage,
    registry: CollectorRegistry | None = None,
    leadership: Leadership | None = None,
) -> WriteSide:
    """Assemble the write side over an open store and storage (no background tasks).

    ``leadership`` elects which replica's transfer manager drives transfers; without
    it this one does (see :func:`open_write_side` for the election of a deployment).
    """
    metrics = WriteSideMetrics(registry)
    states = StateLoader(
        store,
        storage,
        metrics,
        capacity=settings.state_cache_size,
        snapshot_every=settings.snapshot_every,
    )
    handler = CommandHandler(store, states, metrics, max_attempts=settings.command_attempts)
    guard = IdempotencyGuard(
        storage,
        ttl=settings.idempotency_ttl,
        lease=settings.idempotency_lease,
        max_wait=settings.idempotency_wait,
    )
    manager = None
    if settings.transfer_manager:
        manager = TransferProcessManager(store, handler, metrics, leadership=leadership)
        handler.listeners.append(manager.observe)
    return WriteSide(store, storage, metrics, states, handler, guard, manager)


@contextlib.asynccontextmanager
async def open_write_side(
    settings: CommandsSettings,
    store: EventStore | None = None,
    registry: CollectorRegistry | None = None,
) -> AsyncIterator[WriteSide]:
    """Open the write side, with its background tasks (the transfer manager if enabled,
    the purge of expired idempotency keys); stop and close everything on exit.

    ``store`` given: it is used and left open. Otherwise one is opened from settings.
    """
    own_store = store is None
    if store is None:
        store = await open_event_store(
            settings.eventstore_url,
            limits=settings.limits(),
            pool_size=settings.pool_size,
            append_statements=settings.append_statements,
        )
    try:
        storage = await open_command_storage(
            store, settings.eventstore_url, pool_size=settings.storage_pool_size
        )
        try:
            # One transfer manager of all the replicas on this store drives transfers.
            leadership = elected(settings.eventstore_url, "transfers", role="transfer-manager")
            side = build_write_side(settings, store, storage, registry, leadership)
            try:
                async with _background(side):
                    yield side
            finally:
                await side.guard.drain()
        finally:
            await storage.close()
    finally:
        if own_store:
            await store.close()


@contextlib.asynccontextmanager
async def _background(side: WriteSide) -> AsyncIterator[None]:
    if side.manager is not None:
        side.tasks.append(asyncio.create_task(side.manager.run(), name="transfer-manager"))
    side.tasks.append(asyncio.create_task(_purge_keys(side.guard), name="idempotency-purge"))
    side.tasks.append(asyncio.create_task(_renew_leases(side.guard), name="idempotency-leases"))
    try:
        yield
    finally:
        await asyncio.gather(*(_cancel(task) for task in side.tasks))
        results = await asyncio.gather(*side.tasks, return_exceptions=True)
        for task, result in zip(side.tasks, results, strict=True):
            if isinstance(result, Exception):
                log.error("background task %s failed", task.get_name(), exc_info=result)
        side.tasks.clear()


async def _cancel(task: asyncio.Task[None]) -> None:
    """Cancel ``task`` and wait until it has ended. Python 3.11's ``asyncio.wait_for``
    swallows a cancellation that arrives as the future it waits for completes (the
    store's subscription waits that way), so the task is cancelled again until done."""
    while not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=0.1)


async def _renew_leases(guard: IdempotencyGuard) -> None:
    """Keep the leases of keyed commands running here (see IdempotencyGuard)."""
    while True:
        await asyncio.sleep(guard.renew_interval)
        await guard.renew_leases()


async def _purge_keys(guard: IdempotencyGuard) -> None:
    """Delete expired idempotency keys every ten minutes (expired keys are already
    ignored; this only reclaims space)."""
    while True:
        try:
            deleted = await guard.purge_expired()
        except EventStoreError as exc:
            log.warning("purging expired idempotency keys failed: %s", exc)
        else:
            if deleted:
                log.info("purged %d expired idempotency keys", deleted)
        await asyncio.sleep(_PURGE_INTERVAL)
