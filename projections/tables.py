"""The read models' tables, defined once and instantiated under any name suffix.

A projection's live tables use the plain names; a replay builds the same tables under
``REPLAY_SUFFIX`` and renames them into place (see :mod:`projections.replay`). Only
primary keys are declared: every query the API makes walks a primary key, and a shadow
table with no other index keeps its name free of clashes when it is renamed.

Timestamps are ISO 8601 UTC text, so PostgreSQL and SQLite store and compare them the
same way; money and positions are 64-bit integers.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TypeAlias

from sqlalchemy import BigInteger, Boolean, Column, Integer, MetaData, Table, Text

Tables: TypeAlias = Mapping[str, Table]
"""A projection's tables by logical name (``"accounts"``), live or shadow."""

REPLAY_SUFFIX = "__replay"
RETIRED_SUFFIX = "__retired"

CHECKPOINTS = "rm_checkpoints"


def checkpoints_table(metadata: MetaData | None = None) -> Table:
    """One row per projection: the position its read model has applied, written in the
    same transaction as every change to that read model."""
    return Table(
        CHECKPOINTS,
        metadata or MetaData(),
        Column("projection", Text, primary_key=True),
        Column("position", BigInteger, nullable=False),
        Column("updated_at", Text, nullable=False),
    )


def account_summary(metadata: MetaData, suffix: str = "") -> Table:
    return Table(
        f"rm_account_summary{suffix}",
        metadata,
        Column("account_id", Text, primary_key=True),
        Column("owner", Text, nullable=False),
        Column("balance", BigInteger, nullable=False),
        Column("status", Text, nullable=False),
        Column("version", Integer, nullable=False),
        Column("position", BigInteger, nullable=False),
        Column("opened_at", Text, nullable=False),
        Column("updated_at", Text, nullable=False),
    )


def account_transactions(metadata: MetaData, suffix: str = "") -> Table:
    return Table(
        f"rm_account_transactions{suffix}",
        metadata,
        Column("account_id", Text, primary_key=True),
        Column("version", Integer, primary_key=True),
        Column("position", BigInteger, nullable=False),
        Column("kind", Text, nullable=False),
        Column("amount", BigInteger, nullable=False),
        Column("balance_after", BigInteger, nullable=False),
        Column("transfer_id", Text, nullable=True),
        Column("recorded_at", Text, nullable=False),
    )


def transfers(metadata: MetaData, suffix: str = "") -> Table:
    return Table(
        f"rm_transfers{suffix}",
        metadata,
        Column("transfer_id", Text, primary_key=True),
        Column("from_account", Text, nullable=False),
        Column("to_account", Text, nullable=False),
        Column("amount", BigInteger, nullable=False),
        Column("status", Text, nullable=False),
        Column("reason", Text, nullable=True),
        Column("compensated", Boolean, nullable=False),
        Column("steps", Text, nullable=False),
        Column("version", Integer, nullable=False),
        Column("position", BigInteger, nullable=False),
        Column("requested_at", Text, nullable=False),
        Column("updated_at", Text, nullable=False),
    )


def dashboard_totals(metadata: MetaData, suffix: str = "") -> Table:
    return Table(
        f"rm_dashboard_totals{suffix}",
        metadata,
        Column("id", Text, primary_key=True),
        Column("accounts_opened", BigInteger, nullable=False),
        Column("accounts_closed", BigInteger, nullable=False),
        Column("total_balance", BigInteger, nullable=False),
        Column("deposits", BigInteger, nullable=False),
        Column("withdrawals", BigInteger, nullable=False),
        Column("transfers_requested", BigInteger, nullable=False),
        Column("transfers_completed", BigInteger, nullable=False),
        Column("transfers_failed", BigInteger, nullable=False),
    )


def dashboard_minutes(metadata: MetaData, suffix: str = "") -> Table:
    return Table(
        f"rm_dashboard_minutes{suffix}",
        metadata,
        Column("minute", Text, primary_key=True),
        Column("movements", BigInteger, nullable=False),
    )


TableFactory: TypeAlias = Callable[[MetaData, str], Table]


def build(factories: Mapping[str, TableFactory], suffix: str = "") -> dict[str, Table]:
    """The tables of ``factories`` under ``suffix``, on a metadata of their own."""
    metadata = MetaData()
    return {name: factory(metadata, suffix) for name, factory in factories.items()}
