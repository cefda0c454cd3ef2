"""The published event contract: stable names, round trips and the upcaster."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from commands.domain import account
from commands.domain.account import Deposit
from commands.events import (
    EVENT_TYPES,
    AccountOpened,
    EventContractError,
    MoneyDeposited,
    decode,
    decode_stored,
    encode,
)
from commands.testing import DeciderSpec, from_log


@dataclass
class Stored:
    type: str
    data: dict[str, Any]
    metadata: dict[str, Any] = field(default_factory=dict)


def test_type_names_are_stable_strings() -> None:
    assert sorted(EVENT_TYPES) == sorted(
        [
            "AccountOpened",
            "MoneyDeposited",
            "MoneyWithdrawn",
            "AccountClosed",
            "AccountDebitedForTransfer",
            "AccountCreditedForTransfer",
            "AccountDebitReversed",
            "AccountTransferLegRefused",
            "TransferRequested",
            "TransferSourceDebited",
            "TransferTargetCredited",
            "TransferCompleted",
            "TransferCreditRejected",
            "TransferDebitCompensated",
            "TransferFailed",
        ]
    )


def test_encode_records_the_schema_version() -> None:
    event_type, data, metadata = encode(AccountOpened(account_id="a", owner="Ada"))
    assert (event_type, data, metadata) == (
        "AccountOpened",
        {"account_id": "a", "owner": "Ada"},
        {"schema_version": 2},
    )
    assert decode_stored(Stored(event_type, data, metadata)) == AccountOpened(
        account_id="a", owner="Ada"
    )


def test_a_version_1_account_opened_is_upcast_on_load() -> None:
    old = Stored("AccountOpened", {"account_id": "a", "owner_name": "Ada"})
    assert decode_stored(old) == AccountOpened(account_id="a", owner="Ada")


def test_a_decider_replays_old_events_through_the_upcaster() -> None:
    spec = DeciderSpec(account.decider)
    history = from_log("AccountOpened", {"account_id": "a", "owner_name": "Ada"}, 1)
    state = (
        spec.given(history)
        .when(Deposit(account_id="a", amount=3))
        .then(MoneyDeposited(account_id="a", amount=3))
    )
    assert state.owner == "Ada"


@pytest.mark.parametrize(
    ("event_type", "data", "version", "message"),
    [
        ("NoSuchEvent", {}, 1, "unknown event type"),
        ("AccountOpened", {"account_id": "a", "owner": "x"}, 3, "not readable"),
        ("AccountOpened", {"account_id": "a"}, 1, "cannot be upcast"),
        ("MoneyDeposited", {"account_id": "a", "amount": -5}, 1, "does not match"),
    ],
)
def test_unreadable_events_raise_a_contract_error(
    event_type: str, data: dict[str, Any], version: int, message: str
) -> None:
    with pytest.raises(EventContractError, match=message):
        decode(event_type, data, version)


def test_events_are_immutable() -> None:
    event = MoneyDeposited(account_id="a", amount=1)
    with pytest.raises(ValueError, match="frozen"):
        event.amount = 2  # type: ignore[misc]
