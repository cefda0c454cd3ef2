"""Keeping the cyclic garbage collector off long-lived objects while a read model is
built.

A projector or a replay allocates a handful of container objects per event (records,
their data, decoded events, rows); batches in hand outlive the young generations, so
full collections keep coming, and each one scans every object of the process: the
modules, classes and pools made at start-up, which are never garbage. On a replay
that was a third of the CPU, and in the live projector each full collection stopped
the event loop for a tenth of a second or more, which every event in flight then
waited for.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

_state = {"holders": 0, "thaw": 0}
"""How many blocks are inside :func:`older_objects_frozen` now (they may nest or
overlap: a projector and a replay in one process), and whether the last one to leave
gives the objects back (1) or leaves them exempt (0)."""


@contextmanager
def older_objects_frozen() -> Iterator[None]:
    """Exempt every object that exists on entry from cyclic collection until the
    block ends; objects made inside are collected as usual.

    When the last of overlapping blocks ends, the exempt objects go back to the
    oldest generation, so nothing stays exempt (and a cycle that was garbage on
    entry is collected then), unless objects were exempt already when the first
    block began: the process keeps its start-up objects exempt for good (see
    chronicle.runtime), and giving them back would undo that, so they and the ones
    added here stay exempt.
    """
    if _state["holders"] == 0:
        _state["thaw"] = int(gc.get_freeze_count() == 0)
        gc.freeze()
    _state["holders"] += 1
    try:
        yield
    finally:
        _state["holders"] -= 1
        if _state["holders"] == 0 and _state["thaw"]:
            gc.unfreeze()
