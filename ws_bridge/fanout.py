"""Fan-out: which subscriptions an event goes to, without awaiting any socket.

Subscriptions are indexed by the most selective field of their filter (streams, else
categories, else types, else "everything"). An event has one stream, one category and
one type, so it meets each subscription at most once across the four groups, and only
the subscriptions that could match are looked at.
"""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Iterable, Iterator
from typing import Protocol

from ws_bridge.batch import Batch
from ws_bridge.protocol import EncodedEvent, Filter, event_prefix


class Sink(Protocol):
    """Where a subscription's frames go: one client's outbound queue."""

    def push(self, frame: bytes, batch: Batch | None = None) -> bool:
        """Send or queue ``frame`` without waiting (with ``batch``, a frame that can go
        straight to the socket is added to it). False when the client overflowed: it
        is then being closed with 1013 and takes nothing more."""

    def overflow(self) -> None:
        """The client fell too far behind: close it with 1013."""


class Subscription:
    """One ``subscribe`` of one client.

    ``cursor`` is the position of the last event this subscription has covered: it
    never takes an event at or below it, so a backfill and the live feed can overlap
    without a duplicate. While a backfill runs, live events wait in ``pending``
    (bounded; overflowing it closes the client with 1013).
    """

    __slots__ = ("cursor", "filter", "id", "pending", "pending_limit", "prefix", "sink")

    def __init__(self, sub_id: str, filter_: Filter, sink: Sink, pending_limit: int) -> None:
        self.id = sub_id
        self.filter = filter_
        self.sink = sink
        self.prefix = event_prefix(sub_id)
        self.cursor = 0
        self.pending: deque[EncodedEvent] | None = None
        self.pending_limit = pending_limit

    @property
    def live(self) -> bool:
        return self.pending is None

    def offer(self, encoded: EncodedEvent, batch: Batch | None = None) -> bool:
        """Take a live event that matches the filter; True when it was sent now."""
        if encoded.position <= self.cursor:
            return False
        if self.pending is not None:
            if len(self.pending) >= self.pending_limit:
                self.sink.overflow()
            else:
                self.pending.append(encoded)
            return False
        self.cursor = encoded.position
        return self.sink.push(encoded.frame(self.prefix), batch)


class Fanout:
    """Every subscription of one replica, indexed for matching."""

    def __init__(self) -> None:
        self._everything: set[Subscription] = set()
        self._by_stream: defaultdict[str, set[Subscription]] = defaultdict(set)
        self._by_category: defaultdict[str, set[Subscription]] = defaultdict(set)
        self._by_type: defaultdict[str, set[Subscription]] = defaultdict(set)
        self.count = 0

    def add(self, sub: Subscription) -> None:
        for group in self._groups(sub):
            group.add(sub)
        self.count += 1

    def remove(self, sub: Subscription) -> None:
        index, keys = self._index_of(sub.filter)
        if index is None:
            self._everything.discard(sub)
        else:
            for key in keys:
                members = index.get(key)
                if members is not None:
                    members.discard(sub)
                    if not members:
                        del index[key]
        self.count -= 1

    def publish(self, encoded: EncodedEvent) -> int:
        """Offer ``encoded`` to every matching subscription; the number sent now.

        Never awaits: a subscription whose client is behind queues it or overflows.
        """
        event = encoded.event
        batch = Batch()
        sent = 0
        # Copies of the sets: an overflowing client leaves later, never mid-iteration.
        for sub in tuple(self._everything):  # no filter: nothing to check
            if sub.offer(encoded, batch):
                sent += 1
        for group in self._indexed(event.stream_id, event.category, event.type):
            for sub in tuple(group):
                if sub.filter.matches(event) and sub.offer(encoded, batch):
                    sent += 1
        batch.flush()
        return sent

    def _indexed(self, stream: str, category: str, type_: str) -> Iterator[set[Subscription]]:
        for index, key in (
            (self._by_stream, stream),
            (self._by_category, category),
            (self._by_type, type_),
        ):
            group = index.get(key)
            if group:
                yield group

    def _groups(self, sub: Subscription) -> Iterable[set[Subscription]]:
        index, keys = self._index_of(sub.filter)
        if index is None:
            return (self._everything,)
        return [index[key] for key in keys]

    def _index_of(
        self, filter_: Filter
    ) -> tuple[defaultdict[str, set[Subscription]] | None, frozenset[str]]:
        if filter_.streams:
            return self._by_stream, filter_.streams
        if filter_.categories:
            return self._by_category, filter_.categories
        if filter_.types:
            return self._by_type, filter_.types
        return None, frozenset()
