"""The one place errors become HTTP: RFC 9457 problem+json with a stable ``code``.

Routes never raise HTTP errors for domain rules; the write side raises its own errors
(commands.errors) and the event store its own, and this module maps them.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from starlette.responses import Response

from commands import errors
from commands.events import EventContractError
from eventstore import EventStoreError, InvalidAppend, SchemaNotReady, StoreUnavailable
from eventstore.web import ProblemError

_STATUS: list[tuple[type[errors.CommandsError], int, str]] = [
    (errors.AccountNotFound, 404, "Account not found"),
    (errors.TransferNotFound, 404, "Transfer not found"),
    (errors.AccountAlreadyExists, 409, "Account already exists"),
    (errors.TransferAlreadyExists, 409, "Transfer already exists"),
    (errors.TransferStepOutOfOrder, 409, "Transfer step out of order"),
    (errors.InsufficientFunds, 422, "Insufficient funds"),
    (errors.AccountClosed, 422, "Account closed"),
    (errors.AccountNotEmpty, 422, "Account not empty"),
    (errors.BalanceLimitExceeded, 422, "Balance limit exceeded"),
    (errors.SameAccountTransfer, 422, "Transfer to the same account"),
    (errors.DomainError, 422, "Command refused"),
    (errors.ConcurrencyConflict, 409, "The stream kept changing; try again"),
    (errors.IdempotencyKeyInProgress, 409, "A request with this key is still running"),
    (errors.IdempotencyKeyReused, 422, "Idempotency-Key reused for another request"),
    (errors.Unauthenticated, 401, "Authentication required"),
    (errors.Forbidden, 403, "Missing scope"),
    (errors.CommandsError, 500, "Internal error"),
]


def problem_for(exc: errors.CommandsError) -> ProblemError:
    """The problem document of a write-side error."""
    if isinstance(exc, errors.PreconditionFailed):
        return ProblemError(
            412,
            exc.code,
            "Version mismatch",
            str(exc),
            headers={"ETag": f'"{exc.current}"'},
            current_version=exc.current,
        )
    status, title = next((s, t) for cls, s, t in _STATUS if isinstance(exc, cls))
    headers = {}
    if isinstance(exc, errors.Unauthenticated):
        headers["WWW-Authenticate"] = 'Bearer realm="chronicle", error="invalid_token"'
    elif isinstance(exc, errors.Forbidden):
        headers["WWW-Authenticate"] = 'Bearer realm="chronicle", error="insufficient_scope"'
    if isinstance(exc, errors.ConcurrencyConflict | errors.IdempotencyKeyInProgress):
        headers["Retry-After"] = "1"
    return ProblemError(status, exc.code, title, str(exc) or None, headers=headers)


def store_problem(exc: EventStoreError) -> ProblemError:
    """The problem document of an event store error."""
    if isinstance(exc, StoreUnavailable):
        return ProblemError(
            503, "store_unavailable", "Event store unavailable", headers={"Retry-After": "1"}
        )
    if isinstance(exc, SchemaNotReady):
        return ProblemError(503, "schema_not_ready", "Event store schema missing; migrate")
    if isinstance(exc, InvalidAppend):
        return ProblemError(422, "invalid_event", "The events were refused", str(exc))
    return ProblemError(500, "store_error", "Event store error")


def install_command_problems(app: FastAPI) -> None:
    """Map the write side's and the event store's errors on ``app``."""
    app.add_exception_handler(errors.CommandsError, _commands_error)
    app.add_exception_handler(EventStoreError, _store_error)
    app.add_exception_handler(EventContractError, _contract_error)


async def _commands_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, errors.CommandsError)
    return problem_for(exc).response()


async def _store_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, EventStoreError)
    return store_problem(exc).response()


async def _contract_error(_: Request, __: Exception) -> Response:
    return ProblemError(500, "unreadable_event", "A stored event cannot be read").response()
