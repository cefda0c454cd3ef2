"""The bank ledger's read models."""

from __future__ import annotations

from projections.bank.accounts import AccountSummaryProjection
from projections.bank.dashboard import DashboardProjection
from projections.bank.transactions import AccountTransactionsProjection
from projections.bank.transfers import TransfersProjection
from projections.projection import Projection


def bank_projections() -> list[Projection]:
    """Every read model of the bank, in a stable order."""
    return [
        AccountSummaryProjection(),
        AccountTransactionsProjection(),
        TransfersProjection(),
        DashboardProjection(),
    ]


__all__ = [
    "AccountSummaryProjection",
    "AccountTransactionsProjection",
    "DashboardProjection",
    "TransfersProjection",
    "bank_projections",
]
