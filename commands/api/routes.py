"""The routes of the command API (DESIGN.md, "Command API"). Each builds one command and
hands it to :func:`commands.api.dispatch.dispatch`; no rule lives here."""

from __future__ import annotations

import re
import uuid
from typing import Any, TypeVar

from fastapi import APIRouter, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError
from starlette.responses import Response

from commands.api.auth import Authenticator
from commands.api.dispatch import BuildCommand, CommandHeaders, Reply, dispatch
from commands.api.schemas import (
    AmountBody,
    OpenAccountBody,
    TransferBody,
    responses,
    result_example,
)
from commands.domain import account, transfer
from commands.domain.account import AccountStatus, CloseAccount, Deposit, OpenAccount, Withdraw
from commands.domain.decider import Aggregate, Command
from commands.domain.transfer import RequestTransfer
from commands.domain.values import ID_PATTERN
from commands.errors import AccountNotFound
from commands.events import account_stream, transfer_stream
from commands.write_side import WriteSide
from eventstore.tracing import current_traceparent

C = TypeVar("C", bound=Command)
S = TypeVar("S", bound=BaseModel)
B = TypeVar("B", bound=BaseModel)

# Routes read their headers, token and body themselves rather than through FastAPI
# dependencies: per-request dependency resolution costs more than the command itself.
# openapi_extra documents what they read.


async def _actor(request: Request) -> str:
    authenticator: Authenticator = request.app.state.auth
    return await authenticator.writer(request.headers.get("authorization"))


def _headers(request: Request) -> CommandHeaders:
    get = request.headers.get
    return CommandHeaders(
        get("if-match"),
        get("idempotency-key"),
        get("x-correlation-id"),
        get("x-causation-id"),
        # With tracing on, the request's own span, so later stages are its children.
        current_traceparent() or get("traceparent"),
    )


async def _body(request: Request, model: type[B]) -> B:
    """The JSON body as ``model``; errors are request validation errors (400/422)."""
    try:
        return model.model_validate_json(await request.body())
    except ValidationError as exc:
        errors = [
            {**error, "loc": ("body", *error["loc"])}
            for error in exc.errors(include_url=False, include_input=False)
        ]
        raise RequestValidationError(errors) from None


def _side(request: Request) -> WriteSide:
    side: WriteSide = request.app.state.side
    return side


_HEADER_DOCS = [
    ("If-Match", 'expected stream version, e.g. "3"; 412 when the stream is elsewhere'),
    ("Idempotency-Key", "same key and body return the first response, writing nothing"),
    ("X-Correlation-ID", "recorded as correlation_id (default: a new id per request)"),
    ("X-Causation-ID", "recorded as causation_id (default: the request's id)"),
    ("traceparent", "W3C trace context, recorded in event metadata"),
]


def _doc(body: type[BaseModel] | None, *, account: bool = False) -> dict[str, Any]:
    headers = [
        {"name": name, "in": "header", "required": False, "description": text,
         "schema": {"type": "string"}}
        for name, text in _HEADER_DOCS
    ]  # fmt: skip
    extra: dict[str, Any] = {
        "parameters": [_ACCOUNT_PARAMETER, *headers] if account else headers,
        "security": [{"HTTPBearer": []}],
    }
    if body is not None:
        schema = body.model_json_schema()
        extra["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": schema, "example": schema["examples"][0]}},
        }
    return extra


_ACCOUNT_ID = re.compile(ID_PATTERN)
_ACCOUNT_PARAMETER = {
    "name": "account_id",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "pattern": ID_PATTERN},
    "example": "acc-7f3a",
}


def _account_id(request: Request) -> str:
    """The path's account id, checked like a body field (422 ``validation_failed``)."""
    account_id: str = request.path_params["account_id"]
    if not _ACCOUNT_ID.match(account_id):
        error = {"type": "string_pattern_mismatch", "loc": ("path", "account_id"),
                 "msg": f"String should match pattern '{ID_PATTERN}'"}  # fmt: skip
        raise RequestValidationError([error])
    return account_id


router = APIRouter(prefix="/v1", tags=["commands"])


def _generated(seed: uuid.UUID | None, what: str) -> str:
    return str(uuid.uuid4() if seed is None else uuid.uuid5(seed, what))


async def _run(
    request: Request,
    aggregate: Aggregate[C, S],
    build: BuildCommand[C],
    *,
    body: BaseModel | None,
    reply: Reply,
    target_stream: str | None,
) -> Response:
    return await dispatch(
        _side(request),
        aggregate,
        build,
        actor=await _actor(request),
        headers=_headers(request),
        request_path=request.scope["path"],
        body=body,
        reply=reply,
        target_stream=target_stream,
    )


@router.post(
    "/accounts",
    status_code=201,
    summary="Open an account",
    responses=responses(
        201, result_example("account-acc-7f3a", "AccountOpened"), "account_already_exists"
    ),
    openapi_extra=_doc(OpenAccountBody),
)
async def open_account(request: Request) -> Response:
    body = await _body(request, OpenAccountBody)

    def build(seed: uuid.UUID | None) -> OpenAccount:
        account_id = body.account_id or _generated(seed, "account_id")
        return OpenAccount(account_id=account_id, owner=body.owner)

    stream = account_stream(body.account_id) if body.account_id else None
    reply = Reply(201, lambda command: f"/v1/accounts/{command.account_id}")
    return await _run(
        request, account.aggregate, build, body=body, reply=reply, target_stream=stream
    )


@router.post(
    "/accounts/{account_id}/deposits",
    summary="Deposit money",
    responses=responses(
        200,
        result_example("account-acc-7f3a", "MoneyDeposited", 2),
        "account_not_found",
        "account_closed",
        "balance_limit_exceeded",
    ),
    openapi_extra=_doc(AmountBody, account=True),
)
async def deposit(request: Request) -> Response:
    return await _move_money(request, Deposit)


@router.post(
    "/accounts/{account_id}/withdrawals",
    summary="Withdraw money",
    responses=responses(
        200,
        result_example("account-acc-7f3a", "MoneyWithdrawn", 3),
        "account_not_found",
        "account_closed",
        "insufficient_funds",
    ),
    openapi_extra=_doc(AmountBody, account=True),
)
async def withdraw(request: Request) -> Response:
    return await _move_money(request, Withdraw)


async def _move_money(request: Request, command: type[Deposit] | type[Withdraw]) -> Response:
    """A deposit or a withdrawal: an amount moved on the account of the path."""
    account_id = _account_id(request)
    body = await _body(request, AmountBody)

    def build(_: uuid.UUID | None) -> Deposit | Withdraw:
        return command(account_id=account_id, amount=body.amount)

    return await _run(
        request, account.aggregate, build, body=body, reply=Reply(),
        target_stream=account_stream(account_id),
    )  # fmt: skip


@router.post(
    "/accounts/{account_id}/close",
    summary="Close an account (its balance must be zero)",
    responses=responses(
        200,
        result_example("account-acc-7f3a", "AccountClosed", 4),
        "account_not_found",
        "account_closed",
        "account_not_empty",
    ),
    openapi_extra=_doc(None, account=True),
)
async def close_account(request: Request) -> Response:
    account_id = _account_id(request)

    def build(_: uuid.UUID | None) -> CloseAccount:
        return CloseAccount(account_id=account_id)

    return await _run(
        request, account.aggregate, build, body=None, reply=Reply(),
        target_stream=account_stream(account_id),
    )  # fmt: skip


@router.post(
    "/transfers",
    status_code=202,
    summary="Request a transfer (completed or failed asynchronously)",
    responses=responses(
        202,
        result_example("transfer-tr-91c2", "TransferRequested"),
        "account_not_found",
        "transfer_already_exists",
        "same_account_transfer",
    ),
    openapi_extra=_doc(TransferBody),
)
async def request_transfer(request: Request) -> Response:
    body = await _body(request, TransferBody)
    await _require_accounts(_side(request), body.from_account, body.to_account)

    def build(seed: uuid.UUID | None) -> RequestTransfer:
        transfer_id = body.transfer_id or _generated(seed, "transfer_id")
        return RequestTransfer(
            transfer_id=transfer_id,
            from_account=body.from_account,
            to_account=body.to_account,
            amount=body.amount,
        )

    stream = transfer_stream(body.transfer_id) if body.transfer_id else None
    reply = Reply(202, lambda command: f"/v1/transfers/{command.transfer_id}")
    return await _run(
        request, transfer.aggregate, build, body=body, reply=reply, target_stream=stream
    )


async def _require_accounts(side: WriteSide, *account_ids: str) -> None:
    """404 now rather than a transfer that can only fail: both accounts must exist.
    (Accounts are never deleted, so an account seen open once keeps existing.) The
    account's state says so, not its stream: a stream can hold a refused transfer leg
    and no opening."""
    for account_id in account_ids:
        stream = account_stream(account_id)
        loaded = await side.states.load(account.aggregate, stream, fresh=False)
        if loaded.state.status is AccountStatus.NONE:
            # The cache may predate the opening (another replica's): ask the log.
            loaded = await side.states.load(account.aggregate, stream, fresh=True)
        if loaded.state.status is AccountStatus.NONE:
            raise AccountNotFound(f"account {account_id} does not exist")
