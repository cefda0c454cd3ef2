"""A poison event on PostgreSQL + RabbitMQ halts only its projections and is parked in
their dead-letter queues; `chronicle replay` rebuilds a read model equal to live."""

from __future__ import annotations

import json

import pytest

from commands.events import AccountOpened, TransferRequested, account_stream, transfer_stream
from eventstore import NewEvent
from tests.integration.projections.conftest import Stack, run_cli, wait_for
from tests.integration.projections.test_exactly_once import bank_events, converged, write

pytestmark = [pytest.mark.postgres, pytest.mark.rabbitmq]


async def test_a_poison_event_is_parked_and_halts_only_its_projections(stack: Stack) -> None:
    stack.start_relay()
    projector = stack.projector()
    stack.start(projector.run)
    await write(stack, [(account_stream("pp"), AccountOpened(account_id="pp", owner="Ada"))])
    bad = await stack.store.append(
        account_stream("pp"), [NewEvent("MoneyDeposited", {"account_id": "pp", "amount": 0})]
    )
    poison = bad.position
    halted = ("account_summary", "account_transactions", "dashboard")
    await wait_for(
        lambda: all(projector.runner(n).status.state == "halted" for n in halted),
        what="halted projections",
    )
    await write(
        stack,
        [
            (
                transfer_stream("tp"),
                TransferRequested(transfer_id="tp", from_account="pp", to_account="qq", amount=1),
            )
        ],
    )
    head = await stack.store.head_position()
    await wait_for(lambda: projector.runner("transfers").checkpoint == head, what="transfers")
    for name in halted:
        assert projector.runner(name).checkpoint < poison
        parked = await stack.parked(name)
        assert len(parked) == 1
        assert json.loads(parked[0].body)["position"] == poison
        assert "MoneyDeposited" in str(parked[0].headers["x-parked-reason"])
    assert projector.runner("transfers").status.state == "live"


async def test_replay_while_live_equals_live(stack: Stack) -> None:
    stack.start_relay()
    projector = stack.projector()
    stack.start(projector.run)
    events = bank_events(seed=21, count=600)
    await write(stack, events[:400])
    await converged(stack)
    before = projector.runner("account_transactions").checkpoint
    result = run_cli(["replay", "account_transactions", "--batch-size", "100"], stack.env())
    assert result.returncode == 0, result.stderr
    assert "swapped in at position" in result.stdout
    assert "events/s" in result.stderr  # the progress bar
    await write(stack, events[400:])
    await converged(stack)
    assert projector.runner("account_transactions").checkpoint > before
    unknown = run_cli(["replay", "no_such_projection"], stack.env())
    assert unknown.returncode == 2
    assert "no projection named" in unknown.stderr
