"""Each bank read model, fed events through the projection test helper."""

from __future__ import annotations

import json

from commands.events import (
    AccountClosed,
    AccountCreditedForTransfer,
    AccountDebitedForTransfer,
    AccountDebitReversed,
    AccountOpened,
    MoneyDeposited,
    MoneyWithdrawn,
    TransferCompleted,
    TransferCreditRejected,
    TransferDebitCompensated,
    TransferFailed,
    TransferRequested,
    TransferSourceDebited,
    TransferTargetCredited,
    account_stream,
    transfer_stream,
)
from eventstore import RecordedEvent
from projections.bank import (
    AccountSummaryProjection,
    AccountTransactionsProjection,
    DashboardProjection,
    TransfersProjection,
)
from projections.testing import ProjectionTestbed

A1 = account_stream("a1")


async def test_account_summary_follows_balance_status_and_version() -> None:
    async with ProjectionTestbed(AccountSummaryProjection()) as bed:
        await bed.feed(A1, AccountOpened(account_id="a1", owner="Ada"))
        await bed.feed(A1, MoneyDeposited(account_id="a1", amount=500))
        await bed.feed(
            A1,
            MoneyWithdrawn(account_id="a1", amount=200),
            AccountDebitedForTransfer(account_id="a1", transfer_id="t1", amount=300),
            AccountDebitReversed(account_id="a1", transfer_id="t1", amount=300),
        )
        row = await bed.row("accounts", account_id="a1")
        assert row is not None
        assert (row["owner"], row["balance"], row["status"], row["version"]) == (
            "Ada",
            300,
            "open",
            5,
        )
        await bed.feed(
            A1, MoneyWithdrawn(account_id="a1", amount=300), AccountClosed(account_id="a1")
        )
        row = await bed.row("accounts", account_id="a1")
        assert row is not None
        assert row["status"] == "closed"
        assert row["balance"] == 0
        assert row["position"] == await bed.checkpoint()


async def test_an_old_schema_version_is_upcast() -> None:
    async with ProjectionTestbed(AccountSummaryProjection()) as bed:
        old = RecordedEvent(**_v1_opened(bed))  # type: ignore[arg-type]
        await bed.apply([old])
        row = await bed.row("accounts", account_id="a1")
        assert row is not None
        assert row["owner"] == "Grace"


def _v1_opened(bed: ProjectionTestbed) -> dict[str, object]:
    recorded = bed.record(A1, AccountOpened(account_id="a1", owner="unused"))
    return {
        "event_id": recorded.event_id,
        "stream_id": recorded.stream_id,
        "version": recorded.version,
        "position": recorded.position,
        "type": "AccountOpened",
        "data": {"account_id": "a1", "owner_name": "Grace"},
        "metadata": {},
        "recorded_at": recorded.recorded_at,
    }


async def test_statement_lines_carry_signed_amounts_and_running_balance() -> None:
    async with ProjectionTestbed(AccountTransactionsProjection()) as bed:
        await bed.feed(A1, AccountOpened(account_id="a1", owner="Ada"))
        await bed.feed(A1, MoneyDeposited(account_id="a1", amount=1000))
        await bed.feed(
            A1,
            AccountDebitedForTransfer(account_id="a1", transfer_id="t9", amount=250),
            AccountCreditedForTransfer(account_id="a1", transfer_id="t8", amount=50),
        )
        lines = await bed.rows("transactions", account_id="a1")
        assert [(r["version"], r["kind"], r["amount"], r["balance_after"]) for r in lines] == [
            (2, "deposit", 1000, 1000),
            (3, "transfer_out", -250, 750),
            (4, "transfer_in", 50, 800),
        ]
        assert lines[1]["transfer_id"] == "t9"


async def test_a_completed_transfer_records_every_step() -> None:
    t1 = transfer_stream("t1")
    async with ProjectionTestbed(TransfersProjection()) as bed:
        await bed.feed(
            t1, TransferRequested(transfer_id="t1", from_account="a", to_account="b", amount=7)
        )
        await bed.feed(t1, TransferSourceDebited(transfer_id="t1"))
        row = await bed.row("transfers", transfer_id="t1")
        assert row is not None
        assert row["status"] == "debited"
        await bed.feed(
            t1, TransferTargetCredited(transfer_id="t1"), TransferCompleted(transfer_id="t1")
        )
        row = await bed.row("transfers", transfer_id="t1")
        assert row is not None
        assert row["status"] == "completed"
        assert row["version"] == 4
        steps = [s["step"] for s in json.loads(row["steps"])]
        assert steps == ["requested", "source_debited", "target_credited", "completed"]


async def test_a_compensated_transfer_ends_failed_with_its_reason() -> None:
    t2 = transfer_stream("t2")
    async with ProjectionTestbed(TransfersProjection()) as bed:
        await bed.feed(
            t2,
            TransferRequested(transfer_id="t2", from_account="a", to_account="b", amount=7),
            TransferSourceDebited(transfer_id="t2"),
            TransferCreditRejected(transfer_id="t2", reason="account_closed"),
        )
        row = await bed.row("transfers", transfer_id="t2")
        assert row is not None
        assert row["status"] == "compensating"
        await bed.feed(
            t2,
            TransferDebitCompensated(transfer_id="t2"),
            TransferFailed(transfer_id="t2", reason="account_closed", compensated=True),
        )
        row = await bed.row("transfers", transfer_id="t2")
        assert row is not None
        assert (row["status"], row["reason"], bool(row["compensated"])) == (
            "failed",
            "account_closed",
            True,
        )


async def test_dashboard_counts_totals_and_movements_per_minute() -> None:
    async with ProjectionTestbed(DashboardProjection()) as bed:
        await bed.feed(A1, AccountOpened(account_id="a1", owner="Ada"))
        await bed.feed(account_stream("a2"), AccountOpened(account_id="a2", owner="Bob"))
        await bed.feed(
            A1,
            MoneyDeposited(account_id="a1", amount=100),
            MoneyWithdrawn(account_id="a1", amount=40),
        )
        await bed.feed(
            transfer_stream("t1"),
            TransferRequested(transfer_id="t1", from_account="a1", to_account="a2", amount=1),
        )
        totals = await bed.row("totals", id="ledger")
        assert totals is not None
        assert (totals["accounts_opened"], totals["total_balance"], totals["deposits"]) == (
            2,
            60,
            1,
        )
        assert totals["withdrawals"] == 1
        assert totals["transfers_requested"] == 1
        minutes = await bed.rows("minutes")
        assert sum(m["movements"] for m in minutes) == 2
        assert all(len(m["minute"]) == 16 for m in minutes)


async def test_a_batch_fed_twice_changes_nothing_the_second_time() -> None:
    async with ProjectionTestbed(AccountSummaryProjection()) as bed:
        records = [
            bed.record(A1, AccountOpened(account_id="a1", owner="Ada")),
            bed.record(A1, MoneyDeposited(account_id="a1", amount=5)),
        ]
        first = await bed.apply(records)
        again = await bed.apply(records)
        assert first == again == records[-1].position
        row = await bed.row("accounts", account_id="a1")
        assert row is not None
        assert row["balance"] == 5


async def test_events_it_does_not_handle_still_move_the_checkpoint() -> None:
    async with ProjectionTestbed(TransfersProjection()) as bed:
        position = await bed.feed(A1, AccountOpened(account_id="a1", owner="Ada"))
        assert position > 0
        assert await bed.checkpoint() == position
        assert await bed.rows("transfers") == []
