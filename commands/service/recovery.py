"""Finding what a command appended before its runner died.

A command with derived event ids (an idempotency key's claim, a transfer step) may be
run again after a crash. If the first run's append happened, the state now includes its
events and deciding again may come out otherwise: a refusal (a withdrawal whose money
is gone), or other events under the same ids (a transfer step, refused by the store with
EventIdConflict). The runner then looks for the first run's events in the stream.
"""

from __future__ import annotations

from commands.service.context import EventIds, Outcome
from eventstore import EventStore, RecordedEvent

_PAGE = 200


async def find_appended(
    store: EventStore,
    stream_id: str,
    event_ids: EventIds,
    *,
    after_version: int = 0,
    after_position: int = 0,
) -> Outcome | None:
    """The batch with ids ``event_ids(0), event_ids(1)…`` in ``stream_id``, or None.

    Scans backwards from the stream's head and stops at ``after_version`` or
    ``after_position`` (the batch, if it exists, was appended after both), so the cost
    is bounded by what was written to the stream since the command first ran.
    """
    first = event_ids(0)
    before: int | None = None
    while before is None or before >= 1:
        page = await store.read_stream(stream_id, before, backwards=True, limit=_PAGE)
        for event in page:
            if event.version <= after_version or event.position <= after_position:
                return None
            if event.event_id == first:
                return await _batch_from(store, event, event_ids)
        if len(page) < _PAGE:
            return None
        before = page[-1].version - 1
    return None


async def _batch_from(store: EventStore, first: RecordedEvent, event_ids: EventIds) -> Outcome:
    following = await store.read_stream(
        first.stream_id, first.version, limit=store.limits.max_batch
    )
    batch = []
    for index, event in enumerate(following):
        if event.event_id != event_ids(index):
            break
        batch.append(event)
    return Outcome.of(batch, replayed=True)
