"""The PostgreSQL store's group committer, with a recording statement runner in place
of PostgreSQL: appends to one stream keep their order across groups."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from eventstore import Limits, NewEvent
from eventstore.limits import encode_events
from eventstore.pg_append import AppendRequest, GroupCommitter


def _request(stream: str, size: int) -> AppendRequest:
    events = [NewEvent("Happened", {"i": i}) for i in range(size)]
    return AppendRequest(stream, None, encode_events(events, Limits()))


async def test_an_append_left_for_a_full_group_is_not_overtaken_on_its_stream() -> None:
    groups: list[list[tuple[str, int]]] = []

    async def execute(requests: Sequence[AppendRequest]) -> list[dict[str, object]]:
        groups.append([(r.stream_id, len(r.events)) for r in requests])
        await asyncio.sleep(0)
        return []

    committer = GroupCommitter(execute, max_inflight=1, max_events=5)
    blocker = asyncio.create_task(committer.submit(_request("account-w", 1)))
    await asyncio.sleep(0)  # the first group is in flight; the next ones queue
    appends = [
        committer.submit(_request("account-a", 4)),
        committer.submit(_request("account-x", 3)),  # does not fit beside account-a's
        committer.submit(_request("account-x", 1)),  # fits, but must wait for the one above
    ]
    await asyncio.gather(blocker, *appends)
    order = [item for group in groups for item in group if item[0] == "account-x"]
    assert order == [("account-x", 3), ("account-x", 1)]
