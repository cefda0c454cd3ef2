"""The collector exemption of a replay or a running projector gives back what it took,
and only that."""

from __future__ import annotations

import gc

from projections.collector import older_objects_frozen


def test_objects_are_exempt_inside_and_given_back_after_nested_blocks() -> None:
    gc.unfreeze()  # from a process with nothing exempt (an earlier test may have left some)
    with older_objects_frozen():
        exempt = gc.get_freeze_count()
        assert exempt > 0
        with older_objects_frozen():
            assert gc.get_freeze_count() >= exempt
        assert gc.get_freeze_count() >= exempt  # the inner block gave nothing back
    assert gc.get_freeze_count() == 0


def test_a_process_wide_exemption_made_before_is_kept() -> None:
    gc.freeze()
    try:
        before = gc.get_freeze_count()
        with older_objects_frozen():
            pass
        assert gc.get_freeze_count() >= before
    finally:
        gc.unfreeze()
