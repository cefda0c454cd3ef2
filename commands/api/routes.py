"""The routes of the command API (DESIGN.md, "Command API"). Each builds one command and
hands it to :func:`commands.api.dispatch.dispatch`; no rule lives here."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Path, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.responses import Response

from commands.api.auth import Authenticator
from commands.api.dispatch import CommandHeaders, Reply, dispatch
from commands.api.schemas import (
    AmountBody,
    OpenAccountBody,
    TransferBody,
    responses,
    result_example,
)
from commands.domain import account, transfer
from commands.domain.account import CloseAccount, Deposit, OpenAccount, Withdraw
from commands.domain.transfer import RequestTransfer
from commands.domain.values import ID_PATTERN
from commands.errors import AccountNotFound
from commands.events import account_stream, transfer_stream
from commands.write_side import WriteSide

_bearer = HTTPBearer(auto_error=False, description="JWT with the write scope")


async def _actor(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> str:
    authenticator: Authenticator = request.app.state.auth
    return await authenticator.writer(request.headers.get("authorization"))


async def _headers(
    if_match: Annotated[
        str | None,
        Header(alias="If-Match", description='expected stream version, e.g. "3"'),
    ] = None,
    idempotency_key: Annotated[
        str | None,
        Header(alias="Idempotency-Key", description="same key + same body = same response"),
    ] = None,
    correlation_id: Annotated[str | None, Header(alias="X-Correlation-ID")] = None,
    causation_id: Annotated[str | None, Header(alias="X-Causation-ID")] = None,
    traceparent: Annotated[str | None, Header(description="W3C trace context")] = None,
) -> CommandHeaders:
    return CommandHeaders(if_match, idempotency_key, correlation_id, causation_id, traceparent)


def _side(request: Request) -> WriteSide:
    side: WriteSide = request.app.state.side
    return side


Actor = Annotated[str, Depends(_actor)]
Headers = Annotated[CommandHeaders, Depends(_headers)]
Side = Annotated[WriteSide, Depends(_side)]
AccountId = Annotated[str, Path(pattern=ID_PATTERN, examples=["acc-7f3a"])]

router = APIRouter(prefix="/v1", tags=["commands"])


def _generated(seed: uuid.UUID | None, what: str) -> str:
    return str(uuid.uuid4() if seed is None else uuid.uuid5(seed, what))


@router.post(
    "/accounts",
    status_code=201,
    summary="Open an account",
    responses=responses(
        201, result_example("account-acc-7f3a", "AccountOpened"), "account_already_exists"
    ),
)
async def open_account(
    body: OpenAccountBody, request: Request, actor: Actor, headers: Headers, side: Side
) -> Response:
    def build(seed: uuid.UUID | None) -> OpenAccount:
        account_id = body.account_id or _generated(seed, "account_id")
        return OpenAccount(account_id=account_id, owner=body.owner)

    stream = account_stream(body.account_id) if body.account_id else None
    reply = Reply(201, lambda command: f"/v1/accounts/{command.account_id}")
    return await dispatch(
        side,
        account.aggregate,
        build,
        actor=actor,
        headers=headers,
        request_path=request.url.path,
        body=body,
        reply=reply,
        target_stream=stream,
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
)
async def deposit(
    account_id: AccountId,
    body: AmountBody,
    request: Request,
    actor: Actor,
    headers: Headers,
    side: Side,
) -> Response:
    def build(_: uuid.UUID | None) -> Deposit:
        return Deposit(account_id=account_id, amount=body.amount)

    return await dispatch(
        side,
        account.aggregate,
        build,
        actor=actor,
        headers=headers,
        request_path=request.url.path,
        body=body,
        reply=Reply(),
        target_stream=account_stream(account_id),
    )


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
)
async def withdraw(
    account_id: AccountId,
    body: AmountBody,
    request: Request,
    actor: Actor,
    headers: Headers,
    side: Side,
) -> Response:
    def build(_: uuid.UUID | None) -> Withdraw:
        return Withdraw(account_id=account_id, amount=body.amount)

    return await dispatch(
        side,
        account.aggregate,
        build,
        actor=actor,
        headers=headers,
        request_path=request.url.path,
        body=body,
        reply=Reply(),
        target_stream=account_stream(account_id),
    )


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
)
async def close_account(
    account_id: AccountId, request: Request, actor: Actor, headers: Headers, side: Side
) -> Response:
    def build(_: uuid.UUID | None) -> CloseAccount:
        return CloseAccount(account_id=account_id)

    return await dispatch(
        side,
        account.aggregate,
        build,
        actor=actor,
        headers=headers,
        request_path=request.url.path,
        body=None,
        reply=Reply(),
        target_stream=account_stream(account_id),
    )


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
)
async def request_transfer(
    body: TransferBody, request: Request, actor: Actor, headers: Headers, side: Side
) -> Response:
    await _require_accounts(side, body.from_account, body.to_account)

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
    return await dispatch(
        side,
        transfer.aggregate,
        build,
        actor=actor,
        headers=headers,
        request_path=request.url.path,
        body=body,
        reply=reply,
        target_stream=stream,
    )


async def _require_accounts(side: WriteSide, *account_ids: str) -> None:
    """404 now rather than a transfer that can only fail: both accounts must exist.
    (Accounts are never deleted, so an account seen once keeps existing.)"""
    for account_id in account_ids:
        stream = account_stream(account_id)
        if side.states.peek_version(stream) == 0 and await side.store.stream_version(stream) == 0:
            raise AccountNotFound(f"account {account_id} does not exist")
