"""The published event contract of the bank ledger: the only module the read side imports.

Every event is a frozen pydantic model with a stable ``event_type`` (the ``type`` stored
in the log, never a Python path) and a ``schema_version``. The version of a stored event
travels in its metadata under ``schema_version`` (absent means 1). Reading an event of an
older version runs its upcasters, one version at a time, before validation: the log is
never rewritten, readers upgrade what they load.

Streams: ``account-<account_id>`` and ``transfer-<transfer_id>``. Amounts are positive
integers in minor units (cents).

This module imports nothing else from ``commands``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Annotated, Any, ClassVar, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, ValidationError

ACCOUNT_CATEGORY = "account"
TRANSFER_CATEGORY = "transfer"
SCHEMA_VERSION_KEY = "schema_version"


def account_stream(account_id: str) -> str:
    """The stream id of an account."""
    return f"{ACCOUNT_CATEGORY}-{account_id}"


def transfer_stream(transfer_id: str) -> str:
    """The stream id of a transfer."""
    return f"{TRANSFER_CATEGORY}-{transfer_id}"


class EventContractError(ValueError):
    """A stored event cannot be read: unknown type, a schema version from the future, a
    missing upcaster, or data that does not match the model."""


class DomainEvent(BaseModel):
    """Base of every event: immutable, with a stable type name and a schema version."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    event_type: ClassVar[str]
    schema_version: ClassVar[int] = 1


PositiveAmount = Annotated[int, Field(gt=0, description="minor units (cents)")]


# --- account ------------------------------------------------------------------------


class AccountOpened(DomainEvent):
    """An account was opened for ``owner``. Version 2 renamed ``owner_name`` to ``owner``."""

    event_type: ClassVar[str] = "AccountOpened"
    schema_version: ClassVar[int] = 2
    account_id: str
    owner: str


class MoneyDeposited(DomainEvent):
    event_type: ClassVar[str] = "MoneyDeposited"
    account_id: str
    amount: PositiveAmount


class MoneyWithdrawn(DomainEvent):
    event_type: ClassVar[str] = "MoneyWithdrawn"
    account_id: str
    amount: PositiveAmount


class AccountClosed(DomainEvent):
    event_type: ClassVar[str] = "AccountClosed"
    account_id: str


class AccountDebitedForTransfer(DomainEvent):
    """The source account gave ``amount`` to transfer ``transfer_id``."""

    event_type: ClassVar[str] = "AccountDebitedForTransfer"
    account_id: str
    transfer_id: str
    amount: PositiveAmount


class AccountCreditedForTransfer(DomainEvent):
    """The target account received ``amount`` from transfer ``transfer_id``."""

    event_type: ClassVar[str] = "AccountCreditedForTransfer"
    account_id: str
    transfer_id: str
    amount: PositiveAmount


class AccountDebitReversed(DomainEvent):
    """A transfer's debit was given back because its credit could not happen."""

    event_type: ClassVar[str] = "AccountDebitReversed"
    account_id: str
    transfer_id: str
    amount: PositiveAmount


class AccountTransferLegRefused(DomainEvent):
    """A rule of the account refused a transfer's ``leg`` (``debit`` or ``credit``);
    ``reason`` is the refusal's stable code. Recorded under the step's event id, so the
    step has one outcome whoever runs it, and however many times."""

    event_type: ClassVar[str] = "AccountTransferLegRefused"
    account_id: str
    transfer_id: str
    leg: Literal["debit", "credit"]
    amount: PositiveAmount
    reason: str


# --- transfer -----------------------------------------------------------------------


class TransferRequested(DomainEvent):
    event_type: ClassVar[str] = "TransferRequested"
    transfer_id: str
    from_account: str
    to_account: str
    amount: PositiveAmount


class TransferSourceDebited(DomainEvent):
    event_type: ClassVar[str] = "TransferSourceDebited"
    transfer_id: str


class TransferTargetCredited(DomainEvent):
    event_type: ClassVar[str] = "TransferTargetCredited"
    transfer_id: str


class TransferCompleted(DomainEvent):
    event_type: ClassVar[str] = "TransferCompleted"
    transfer_id: str


class TransferCreditRejected(DomainEvent):
    """The target refused the credit (``reason`` is a stable error code); the source's
    debit is being given back."""

    event_type: ClassVar[str] = "TransferCreditRejected"
    transfer_id: str
    reason: str


class TransferDebitCompensated(DomainEvent):
    event_type: ClassVar[str] = "TransferDebitCompensated"
    transfer_id: str


class TransferFailed(DomainEvent):
    """The transfer ended without moving money; ``compensated`` tells whether a debit had
    to be given back on the way."""

    event_type: ClassVar[str] = "TransferFailed"
    transfer_id: str
    reason: str
    compensated: bool = False


ACCOUNT_EVENTS: tuple[type[DomainEvent], ...] = (
    AccountOpened,
    MoneyDeposited,
    MoneyWithdrawn,
    AccountClosed,
    AccountDebitedForTransfer,
    AccountCreditedForTransfer,
    AccountDebitReversed,
    AccountTransferLegRefused,
)
TRANSFER_EVENTS: tuple[type[DomainEvent], ...] = (
    TransferRequested,
    TransferSourceDebited,
    TransferTargetCredited,
    TransferCompleted,
    TransferCreditRejected,
    TransferDebitCompensated,
    TransferFailed,
)
EVENT_TYPES: Mapping[str, type[DomainEvent]] = {
    cls.event_type: cls for cls in (*ACCOUNT_EVENTS, *TRANSFER_EVENTS)
}


# --- upcasters ----------------------------------------------------------------------

Upcaster = Callable[[dict[str, Any]], dict[str, Any]]


def _account_opened_v1_to_v2(data: dict[str, Any]) -> dict[str, Any]:
    """Version 1 called the holder ``owner_name``."""
    upgraded = {key: value for key, value in data.items() if key != "owner_name"}
    upgraded["owner"] = data["owner_name"]
    return upgraded


UPCASTERS: Mapping[tuple[str, int], Upcaster] = {
    ("AccountOpened", 1): _account_opened_v1_to_v2,
}
"""``(event_type, from_version)`` → a function turning that version's data into the next."""


# --- reading and writing ------------------------------------------------------------


class StoredEvent(Protocol):
    """What :func:`decode_stored` needs of a stored event (e.g. eventstore.RecordedEvent)."""

    @property
    def type(self) -> str: ...

    @property
    def data(self) -> Mapping[str, Any]: ...

    @property
    def metadata(self) -> Mapping[str, Any]: ...


def encode(event: DomainEvent) -> tuple[str, dict[str, Any], dict[str, int]]:
    """The ``(type, data, metadata)`` to store for ``event``; the metadata carries the
    schema version, and callers add their own keys to it."""
    return (
        event.event_type,
        event.model_dump(mode="json"),
        {SCHEMA_VERSION_KEY: event.schema_version},
    )


def decode(event_type: str, data: Mapping[str, Any], schema_version: int = 1) -> DomainEvent:
    """The event model for stored ``data`` of ``schema_version``, upcast to the current
    version. Raises EventContractError when that is impossible."""
    model = EVENT_TYPES.get(event_type)
    if model is None:
        raise EventContractError(f"unknown event type {event_type!r}")
    if not isinstance(schema_version, int) or not 1 <= schema_version <= model.schema_version:
        raise EventContractError(
            f"{event_type} schema version {schema_version!r} is not readable "
            f"(this build reads 1..{model.schema_version})"
        )
    upgraded = dict(data)
    for version in range(schema_version, model.schema_version):
        upcaster = UPCASTERS.get((event_type, version))
        if upcaster is None:
            raise EventContractError(f"no upcaster for {event_type} version {version}")
        try:
            upgraded = upcaster(upgraded)
        except (KeyError, TypeError, ValueError) as exc:
            raise EventContractError(f"{event_type} v{version} cannot be upcast: {exc}") from exc
    try:
        return model.model_validate(upgraded)
    except ValidationError as exc:
        raise EventContractError(f"{event_type} data does not match its model: {exc}") from exc


def decode_stored(stored: StoredEvent) -> DomainEvent:
    """Decode an event read from the log, using the schema version in its metadata."""
    return decode(stored.type, stored.data, stored.metadata.get(SCHEMA_VERSION_KEY, 1))
