"""The live apply step alone: batches of live size committed through ``Applier.commit``
for the account-summary and account-transactions read models on PostgreSQL, against
a raw baseline (asyncpg, prepared statements, the same rows written and the same
checkpoint moved, one transaction per batch and model).

No broker, no relay, no consumer: the figure is the CPU this process spends per event
in the apply step (decode, statements, driver), which the live-lag run cannot isolate.
Ours and raw run in alternated rounds on the same events, so a drift of the machine's
load touches both alike.
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg

from eventstore import RecordedEvent
from projections.apply import Applier
from projections.bank import AccountSummaryProjection, AccountTransactionsProjection
from projections.db import open_engine
from projections.projection import Projection

ACCOUNTS = 2000
BATCH = 20
ROUNDS = 4
META = {"schema_version": 1}
V2 = {"schema_version": 2}
RAW = "__raw"
"""Suffix of the raw baseline's copies of the tables and checkpoints."""

_LOCK = "SELECT position FROM rm_checkpoints WHERE projection = $1 FOR UPDATE"
_SAVE = "UPDATE rm_checkpoints SET position = $2, updated_at = $3 WHERE projection = $1"
_SUMMARY_LOAD = (
    f"SELECT account_id, balance FROM rm_account_summary{RAW} WHERE account_id = ANY($1)"
)
_SUMMARY_UPDATE = (
    f"UPDATE rm_account_summary{RAW} SET balance = $2, version = $3, position = $4,"
    " updated_at = $5 WHERE account_id = $1"
)
_LINES_LOAD = (
    f"SELECT DISTINCT ON (account_id) account_id, balance_after FROM rm_account_transactions{RAW}"
    " WHERE account_id = ANY($1) ORDER BY account_id, version DESC"
)
_LINES_INSERT = (
    f"INSERT INTO rm_account_transactions{RAW} VALUES ($1, $2, $3, 'deposit', $4, $5, NULL, $6)"
)


@dataclass
class ApplyRun:
    events: int = 0
    ours_cpu: float = 0.0
    ours_seconds: float = 0.0
    raw_cpu: float = 0.0
    raw_seconds: float = 0.0

    @property
    def ours_us(self) -> float:
        return self.ours_cpu / self.events * 1e6

    @property
    def raw_us(self) -> float:
        return self.raw_cpu / self.events * 1e6

    @property
    def ours_rate(self) -> float:
        return self.events / self.ours_seconds

    @property
    def raw_rate(self) -> float:
        return self.events / self.raw_seconds


class _Log:
    """Synthetic recorded events: openings, then deposits on random accounts."""

    def __init__(self) -> None:
        self.position = 0
        self.versions = [0] * ACCOUNTS
        self.clock = datetime(2026, 1, 1, tzinfo=UTC)
        self.rng = random.Random(7)

    def _record(
        self, account: int, type_: str, data: dict[str, object], meta: dict[str, object] = META
    ) -> RecordedEvent:
        self.position += 1
        self.versions[account] += 1
        self.clock += timedelta(milliseconds=2)
        return RecordedEvent(
            uuid.uuid4(), f"account-a{account}", self.versions[account], self.position,
            type_, data, meta, self.clock,
        )  # fmt: skip

    def openings(self) -> list[RecordedEvent]:
        return [
            self._record(i, "AccountOpened", {"account_id": f"a{i}", "owner": f"O{i}"}, V2)
            for i in range(ACCOUNTS)
        ]

    def deposits(self, count: int) -> list[RecordedEvent]:
        picks = (self.rng.randrange(ACCOUNTS) for _ in range(count))
        return [
            self._record(a, "MoneyDeposited", {"account_id": f"a{a}", "amount": 100}) for a in picks
        ]


async def apply_path(url: str, batches: int) -> ApplyRun:
    """CPU and wall time of ``batches`` batches of BATCH deposits committed to both
    read models, ours against raw; the database at ``url`` is migrated and empty."""
    projections: list[Projection] = [AccountSummaryProjection(), AccountTransactionsProjection()]
    engine = open_engine(url, writer=True)
    raw = await asyncpg.connect(url)
    try:
        appliers = [Applier(p, engine) for p in projections]
        log = _Log()
        await _prepare(raw, appliers, log.openings())
        warm = [log.deposits(BATCH) for _ in range(20)]
        await _ours(appliers, warm)
        await _raw(raw, warm)
        run = ApplyRun()
        per_round = max(1, batches // ROUNDS)
        for _ in range(ROUNDS):
            work = [log.deposits(BATCH) for _ in range(per_round)]
            run.events += per_round * BATCH
            cpu, seconds = await _ours(appliers, work)
            run.ours_cpu, run.ours_seconds = run.ours_cpu + cpu, run.ours_seconds + seconds
            cpu, seconds = await _raw(raw, work)
            run.raw_cpu, run.raw_seconds = run.raw_cpu + cpu, run.raw_seconds + seconds
        return run
    finally:
        await raw.close()
        await engine.dispose()


async def _prepare(
    raw: asyncpg.Connection, appliers: Sequence[Applier], openings: list[RecordedEvent]
) -> None:
    """Open every account in ours (through the applier) and copy it for raw."""
    for applier in appliers:
        await applier.ensure_checkpoint()
        await applier.commit(openings)
    for table in ("rm_account_summary", "rm_account_transactions"):
        await raw.execute(f"CREATE TABLE {table}{RAW} (LIKE {table} INCLUDING ALL)")
        await raw.execute(f"INSERT INTO {table}{RAW} SELECT * FROM {table}")
    await raw.execute(
        f"INSERT INTO rm_checkpoints SELECT projection || '{RAW}', position, updated_at"
        " FROM rm_checkpoints"
    )


async def _ours(
    appliers: Sequence[Applier], work: list[list[RecordedEvent]]
) -> tuple[float, float]:
    cpu, started = time.process_time(), time.perf_counter()
    for batch in work:
        for applier in appliers:
            await applier.commit(batch)
    return time.process_time() - cpu, time.perf_counter() - started


async def _raw(raw: asyncpg.Connection, work: list[list[RecordedEvent]]) -> tuple[float, float]:
    cpu, started = time.process_time(), time.perf_counter()
    for batch in work:
        await _raw_summary(raw, batch)
        await _raw_lines(raw, batch)
    return time.process_time() - cpu, time.perf_counter() - started


def _at(record: RecordedEvent) -> str:
    return record.recorded_at.isoformat(timespec="microseconds")


async def _raw_summary(raw: asyncpg.Connection, batch: list[RecordedEvent]) -> None:
    async with raw.transaction():
        await raw.fetchval(_LOCK, f"account_summary{RAW}")
        accounts = [str(r.data["account_id"]) for r in batch]
        rows = await raw.fetch(_SUMMARY_LOAD, list(set(accounts)))
        balances = {row[0]: row[1] for row in rows}
        changed: dict[str, tuple[object, ...]] = {}
        for account, record in zip(accounts, batch, strict=True):
            balances[account] += int(str(record.data["amount"]))
            changed[account] = (
                account, balances[account], record.version, record.position, _at(record),
            )  # fmt: skip
        await raw.executemany(_SUMMARY_UPDATE, list(changed.values()))
        await raw.execute(_SAVE, f"account_summary{RAW}", batch[-1].position, _at(batch[-1]))


async def _raw_lines(raw: asyncpg.Connection, batch: list[RecordedEvent]) -> None:
    async with raw.transaction():
        await raw.fetchval(_LOCK, f"account_transactions{RAW}")
        accounts = [str(r.data["account_id"]) for r in batch]
        rows = await raw.fetch(_LINES_LOAD, list(set(accounts)))
        balances = {row[0]: row[1] for row in rows}
        lines = []
        for account, record in zip(accounts, batch, strict=True):
            amount = int(str(record.data["amount"]))
            balances[account] = balances.get(account, 0) + amount
            lines.append(
                (account, record.version, record.position, amount, balances[account], _at(record))
            )
        await raw.executemany(_LINES_INSERT, lines)
        await raw.execute(_SAVE, f"account_transactions{RAW}", batch[-1].position, _at(batch[-1]))
