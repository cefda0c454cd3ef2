"""The write side's exception tree.

Every error ``commands`` raises on purpose derives from :class:`CommandsError`. Each has
a stable ``code``; the HTTP status is chosen once, at the edge (``commands.api.problems``)::

    CommandsError
    ├── DomainError                 a rule refused the command; nothing was written
    │   ├── AccountNotFound             account_not_found
    │   ├── AccountAlreadyExists        account_already_exists
    │   ├── AccountClosed               account_closed
    │   ├── AccountNotEmpty             account_not_empty
    │   ├── InsufficientFunds           insufficient_funds
    │   ├── BalanceLimitExceeded        balance_limit_exceeded
    │   ├── TransferNotFound            transfer_not_found
    │   ├── TransferAlreadyExists       transfer_already_exists
    │   ├── SameAccountTransfer         same_account_transfer
    │   └── TransferStepOutOfOrder      transfer_step_out_of_order
    ├── PreconditionFailed          If-Match named another version (carries ``current``)
    ├── ConcurrencyConflict         the stream kept changing; retries exhausted
    ├── IdempotencyError
    │   ├── IdempotencyKeyReused        same key, different request
    │   └── IdempotencyKeyInProgress    same key, first request still running
    ├── AuthError
    │   ├── Unauthenticated             no token, or a bad one
    │   └── Forbidden                   a valid token without the needed scope
    └── ConfigurationError          the process cannot start with these settings

``commands.events.EventContractError`` (a ValueError) stands apart: it lives in the
event contract module, which imports nothing else from ``commands``. Event store errors
(``eventstore.errors``) pass through unchanged.
"""

from __future__ import annotations


class CommandsError(Exception):
    """Root of the write side's errors."""

    code: str = "commands_error"


class DomainError(CommandsError):
    """A business rule refused the command. Deciders raise these; nothing is written."""

    code = "domain_error"


class AccountNotFound(DomainError):
    code = "account_not_found"


class AccountAlreadyExists(DomainError):
    code = "account_already_exists"


class AccountClosed(DomainError):
    code = "account_closed"


class AccountNotEmpty(DomainError):
    """Only an account with a zero balance can be closed."""

    code = "account_not_empty"


class InsufficientFunds(DomainError):
    code = "insufficient_funds"


class BalanceLimitExceeded(DomainError):
    code = "balance_limit_exceeded"


class TransferNotFound(DomainError):
    code = "transfer_not_found"


class TransferAlreadyExists(DomainError):
    code = "transfer_already_exists"


class SameAccountTransfer(DomainError):
    code = "same_account_transfer"


class TransferStepOutOfOrder(DomainError):
    """A transfer step was recorded in a state that does not allow it (e.g. twice)."""

    code = "transfer_step_out_of_order"


class PreconditionFailed(CommandsError):
    """``If-Match`` named version ``expected`` but the stream is at ``current``."""

    code = "precondition_failed"

    def __init__(self, stream_id: str, expected: int, current: int) -> None:
        super().__init__(f"{stream_id} is at version {current}, not {expected}")
        self.stream_id = stream_id
        self.expected = expected
        self.current = current


class ConcurrencyConflict(CommandsError):
    """Other writers kept changing the stream; the bounded retries ran out."""

    code = "concurrency_conflict"

    def __init__(self, stream_id: str, attempts: int) -> None:
        super().__init__(f"{stream_id} changed under {attempts} attempts; try again")
        self.stream_id = stream_id


class IdempotencyError(CommandsError):
    code = "idempotency_error"


class IdempotencyKeyReused(IdempotencyError):
    """The key was used before with a different request."""

    code = "idempotency_key_reused"


class IdempotencyKeyInProgress(IdempotencyError):
    """The first request with this key has not finished yet; retry later."""

    code = "idempotency_key_in_progress"


class AuthError(CommandsError):
    code = "auth_error"


class Unauthenticated(AuthError):
    code = "unauthorized"


class Forbidden(AuthError):
    code = "forbidden"


class ConfigurationError(CommandsError):
    """The settings cannot run this process (e.g. auth enabled without a key)."""

    code = "configuration_error"
