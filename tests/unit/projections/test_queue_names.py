"""The projector's queue: one for every projection of the build, one per subset, and
never the name of a queue of one projection (the earlier topology, which chronicle
migrate deletes)."""

from __future__ import annotations

from projections.bank import bank_projections
from projections.projector import queue_spec, queue_specs, select_projections


def test_a_projector_running_everything_consumes_the_all_queue() -> None:
    assert queue_spec().name == "all"
    assert queue_spec(bank_projections()).name == "all"
    assert queue_spec(reversed(select_projections())).name == "all"
    assert queue_specs() == [queue_spec()]
    assert queue_spec().routing_keys == ("#",)


def test_a_subset_has_a_queue_of_its_own_whatever_its_order() -> None:
    one = queue_spec(select_projections(["transfers", "account_summary"]))
    same = queue_spec(select_projections(["account_summary", "transfers"]))
    other = queue_spec(select_projections(["dashboard"]))
    assert one == same
    assert one.name == "only-account_summary-transfers"
    assert other.name == "only-dashboard"
    assert one.routing_keys == other.routing_keys == ("#",)


def test_no_projector_queue_is_named_like_one_projection() -> None:
    names = {p.name for p in bank_projections()}
    for projection in bank_projections():
        assert queue_spec([projection]).name not in names
    assert queue_spec().name not in names
