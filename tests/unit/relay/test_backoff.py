from __future__ import annotations

import asyncio

import pytest

from eventstore.bus.backoff import Backoff


def test_delays_double_up_to_the_maximum_without_jitter() -> None:
    backoff = Backoff(initial=0.1, maximum=0.5, jitter=0.0)
    assert [backoff.next_delay() for _ in range(5)] == [0.1, 0.2, 0.4, 0.5, 0.5]
    backoff.reset()
    assert backoff.next_delay() == 0.1


def test_jitter_only_shortens() -> None:
    backoff = Backoff(initial=1.0, maximum=1.0, jitter=0.5)
    delays = [backoff.next_delay() for _ in range(200)]
    assert all(0.5 <= d <= 1.0 for d in delays)
    assert len(set(delays)) > 1


async def test_wait_returns_false_at_once_when_stopped() -> None:
    stop = asyncio.Event()
    stop.set()
    assert await asyncio.wait_for(Backoff(initial=30, maximum=30).wait(stop), 1) is False


async def test_wait_sleeps_the_delay() -> None:
    assert await Backoff(initial=0.001, maximum=0.001).wait(asyncio.Event()) is True


@pytest.mark.parametrize("bad", [{"initial": 0}, {"initial": 2, "maximum": 1}, {"jitter": 1}])
def test_nonsense_is_refused(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="back-off needs"):
        Backoff(**bad)
