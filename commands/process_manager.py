"""The transfer process manager: drives every requested transfer to completed or failed.

It follows the log for ``TransferRequested`` events from its durable checkpoint and, for
each, runs the transfer's remaining steps until it is finished (the pure policy is in
``commands.domain.transfer_policy``):

* Every step has one outcome. The account event of a step, the leg or its refusal
  (``AccountTransferLegRefused``), has an id derived from the transfer id and the step:
  running a step again appends nothing, and if it would now go the other way (the
  first run took the money; a deposit came since a refusal), the store refuses the id
  and the manager takes the stored outcome. Recording a step on the transfer uses
  derived ids and the expected version.
* It never loses a transfer. The checkpoint only moves past a request once that
  transfer is finished, so after a crash the manager resumes from it and finishes what
  was in flight, from the transfer's recorded state. Failures are retried with capped
  back-off, never skipped; a manager stuck on repeated failures reports unready.

Following: like ``store.subscribe``, it reads ``read_all`` (filtered to transfer
requests) in commit order and waits between empty reads with back-off. It does not use
``subscribe`` itself because that wakes on every append of the process, which under load
means one extra query per command; this loop wakes when the handler appended a transfer
request (:meth:`observe`), and otherwise polls (requests from other processes).

It runs inside ``chronicle serve commands`` (docs/commands.md says why), and one at a
time: every replica runs one, the replicas elect which one drives the transfers (a
PostgreSQL advisory lock, or a file lock next to an SQLite file), and the others stand
by to take over. The election saves work, not money: two managers driving the same
transfer for a while (a leader cut off without knowing it) still record each step's
one outcome.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar
from uuid import NAMESPACE_URL, UUID, uuid5

from commands.domain import account, transfer
from commands.domain.transfer import TransferState
from commands.domain.transfer_policy import Step, next_step, record_outcome, step_command
from commands.errors import TransferStepOutOfOrder
from commands.events import (
    TRANSFER_CATEGORY,
    AccountTransferLegRefused,
    TransferRequested,
    account_stream,
    transfer_stream,
)
from commands.service.context import CommandContext, Outcome, derived_ids
from commands.service.handler import CommandHandler
from commands.service.metrics import WriteSideMetrics
from commands.service.recovery import find_appended
from eventstore import EventIdConflict, EventStore, PollPolicy, RecordedEvent, StoreUnavailable
from eventstore.leader import Leadership, SoleLeadership, while_leading
from eventstore.signal import AppendSignal

log = logging.getLogger(__name__)

T = TypeVar("T")

CHECKPOINT = "commands.transfer-manager"
_STEP_NAMESPACE = uuid5(NAMESPACE_URL, "https://chronicle.dev/ns/transfer-step")


def step_seed(transfer_id: str, action: str) -> UUID:
    """The seed of the event ids of one action of one transfer."""
    return uuid5(_STEP_NAMESPACE, f"{transfer_id}/{action}")


class TransferProcessManager:
    """Call :meth:`run` in a task; cancel it to stop (the checkpoint is saved).

    ``leadership`` elects the one manager of the replicas that drives transfers; by
    default this one leads at once (a single process, or tests).
    """

    def __init__(
        self,
        store: EventStore,
        handler: CommandHandler,
        metrics: WriteSideMetrics,
        *,
        name: str = CHECKPOINT,
        leadership: Leadership | None = None,
        flush_interval: float = 0.5,
        max_back_off: float = 5.0,
        poll: PollPolicy | None = None,
    ) -> None:
        self._store = store
        self._handler = handler
        self._metrics = metrics
        self._name = name
        self._leadership = leadership or SoleLeadership()
        self.leading = False
        self._flush_interval = flush_interval
        self._max_back_off = max_back_off
        self._handled = 0
        self._saved = 0
        self._failures = 0
        self._poll = poll or PollPolicy()
        self._wake = AppendSignal()
        self.started = asyncio.Event()

    def observe(self, outcome: Outcome) -> None:
        """Called by the handler after every append: wake up for a new transfer."""
        if any(event.type == TransferRequested.event_type for event in outcome.events):
            self._wake.notify()

    @property
    def position(self) -> int:
        """The position of the last transfer request handled (every earlier transfer is
        finished)."""
        return self._handled

    async def run(self) -> None:
        """Lead, or stand by while another replica's manager leads, forever."""
        never = asyncio.Event()
        while True:
            try:
                await self._leadership.acquire(never)
                log.info("transfer manager leads; driving transfers")
                await self._lead()
                log.error("transfer manager lost the lead; standing by")
            finally:
                self._set_leading(False)
                await self._leadership.release()

    async def _lead(self) -> None:
        """Drive transfers until the lead is lost (cancelled at once then: a manager
        that can no longer vouch for its lead must not take another step)."""
        self._set_leading(True)
        # The follow loop ends on its own only through a bug, which fails the manager.
        await while_leading(self._follow(), self._leadership.lost)

    def _set_leading(self, leading: bool) -> None:
        self.leading = leading
        self._metrics.manager_active.set(1 if leading else 0)

    async def _follow(self) -> None:
        """Follow the log forever, from the saved checkpoint."""
        start = await self._retrying(lambda: self._store.load_checkpoint(self._name))
        self._handled = self._saved = start
        self.started.set()
        flusher = asyncio.create_task(self._flush_periodically(), name="transfer-checkpoint")
        try:
            async for event in self._requests(start):
                await self._retrying(functools.partial(self._drive, event))
                self._handled = event.position
                self._metrics.manager_position.set(event.position)
        finally:
            flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await flusher
            await self._flush()

    async def _requests(self, position: int) -> AsyncIterator[RecordedEvent]:
        """Every TransferRequested after ``position``, in commit order, forever."""
        policy, delay = self._poll, self._poll.min_delay
        while True:
            read = functools.partial(
                self._store.read_all,
                position,
                policy.batch_size,
                categories=[TRANSFER_CATEGORY],
                types=[TransferRequested.event_type],
            )
            batch = await self._retrying(read)
            for event in batch:
                yield event
                position = event.position
            if len(batch) == policy.batch_size:
                continue
            # An append that is committed may still be behind the read fence: back off
            # from a few milliseconds, up to the policy's longest wait.
            delay = policy.min_delay if batch else min(delay * 2, policy.max_delay)
            await self._wake.wait(delay)

    async def _drive(self, requested: RecordedEvent) -> None:
        """Run the transfer's remaining steps until it is finished."""
        transfer_id = str(requested.data["transfer_id"])
        context = CommandContext("transfer-manager", "", "").caused_by(requested)
        while True:
            loaded = await self._handler.states.load(
                transfer.aggregate, transfer_stream(transfer_id), fresh=True
            )
            step = next_step(loaded.state)
            if step is None:
                if loaded.state.finished and loaded.version > 0:
                    self._metrics.transfers.labels(loaded.state.status.value).inc()
                return
            refused = await self.perform(loaded.state, step, context, requested.position)
            command = record_outcome(loaded.state, step, refused)
            ids = derived_ids(step_seed(transfer_id, f"record-{step}"))
            with contextlib.suppress(TransferStepOutOfOrder):  # recorded meanwhile: reload
                await self._handler.execute(transfer.aggregate, command, context, event_ids=ids)

    async def perform(
        self, state: TransferState, step: Step, context: CommandContext, requested_at: int
    ) -> str | None:
        """Run ``step`` on its account: the code of its refusal, or None when it
        happened. Whoever ran the step first (this manager before a crash, or another
        one) decided its outcome, and that outcome is the one returned.
        ``requested_at`` is the position of the transfer's request."""
        command = step_command(state, step)
        ids = derived_ids(step_seed(state.transfer_id, str(step)))
        try:
            outcome = await self._handler.execute(
                account.aggregate, command, context, event_ids=ids
            )
            recorded = outcome.events[0]
        except EventIdConflict as conflict:
            # The step's id holds another outcome than the one decided now (the money
            # moved since): the stored one stands. It came after the request.
            stream = account_stream(command.account_id)
            found = await find_appended(self._store, stream, ids, after_position=requested_at)
            if found is None:  # the id is taken, so the event is there: a read went wrong
                raise StoreUnavailable(
                    f"{stream}: the event of transfer step {step} is not readable"
                ) from conflict
            recorded = found.events[0]
        if recorded.type == AccountTransferLegRefused.event_type:
            return str(recorded.data["reason"])
        return None

    async def _retrying(self, action: Callable[[], Awaitable[T]]) -> T:
        delay = 0.05
        while True:
            try:
                result = await action()
            except Exception as exc:
                # Never skip: a transfer left behind would keep money in flight. Transient
                # errors (database down) heal; a bug shows up in the logs and in
                # chronicle_transfer_manager_failures (alert ChronicleTransferManagerStuck).
                self._set_failures(self._failures + 1)
                log.warning("transfer manager failed (%d in a row): %r", self._failures, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._max_back_off)
                continue
            if self._failures:
                self._set_failures(0)
            return result

    def _set_failures(self, count: int) -> None:
        self._failures = count
        self._metrics.manager_failures.set(count)

    async def _flush_periodically(self) -> None:
        while True:
            await asyncio.sleep(self._flush_interval)
            await self._flush()

    async def _flush(self) -> None:
        if self._handled == self._saved:
            return
        position = self._handled
        try:
            await self._store.save_checkpoint(self._name, position)
        except Exception as exc:
            # The next flush tries again; meanwhile a restart only redoes idempotent work.
            log.warning("transfer manager checkpoint not saved: %r", exc)
            return
        self._saved = position
