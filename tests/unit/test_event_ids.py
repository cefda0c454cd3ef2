"""Event ids: RFC 9562 version 7, strictly increasing within a process, unique across
threads."""

from __future__ import annotations

import threading
import time
from uuid import UUID

from eventstore.model import NewEvent, new_event_id


def test_ids_are_version_7_with_the_rfc_variant() -> None:
    event_id = new_event_id()
    assert event_id.version == 7
    assert event_id.variant == "specified in RFC 4122"


def test_ids_carry_the_current_millisecond() -> None:
    before = time.time_ns() // 1_000_000
    event_id = new_event_id()
    after = time.time_ns() // 1_000_000
    assert before <= event_id.int >> 80 <= after + 1


def test_ids_strictly_increase() -> None:
    ids = [new_event_id() for _ in range(50_000)]
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)


def test_threads_never_share_an_id() -> None:
    found: list[list[UUID]] = [[] for _ in range(4)]

    def make(into: list[UUID]) -> None:
        into.extend(new_event_id() for _ in range(10_000))

    threads = [threading.Thread(target=make, args=(bucket,)) for bucket in found]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    everything = [event_id for bucket in found for event_id in bucket]
    assert len(set(everything)) == len(everything)


def test_new_events_get_distinct_ids() -> None:
    assert NewEvent("A", {}).event_id != NewEvent("A", {}).event_id
