"""The query API's routes (DESIGN.md, "Query API").

Every ``/v1`` response carries ``X-Projection-Position``: the position the read model
had applied when the answer was read. ``?min_position=N`` waits, up to the configured
bound, for the read model to reach N; if it does not, the answer is what it has, with
``X-Projection-Stale: true``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Query, Request, Response

from eventstore import EventStore, RecordedEvent
from eventstore.web import ProblemError
from projections.api.consistency import wait_for_position
from projections.api.pagination import decode_cursor, encode_cursor
from projections.api.readers import Reader
from projections.api.schemas import (
    Account,
    AccountPage,
    EventPage,
    LogEvent,
    Stats,
    Transaction,
    TransactionPage,
    Transfer,
)
from projections.errors import InvalidCursor
from projections.projection import iso

POSITION_HEADER = "X-Projection-Position"
STALE_HEADER = "X-Projection-Stale"

MinPosition = Annotated[
    int | None, Query(ge=0, description="wait (bounded) until the read model applied it")
]
Limit = Annotated[int, Query(ge=1, le=500)]
Cursor = Annotated[str | None, Query(max_length=512)]

router = APIRouter(prefix="/v1", tags=["queries"])

T = TypeVar("T")


def _reader(request: Request) -> Reader:
    reader: Reader = request.app.state.reader
    return reader


async def _answer(
    request: Request, min_position: int | None, read: Callable[[], Awaitable[tuple[int, T]]]
) -> tuple[int, T, bool]:
    """``read()``'s answer (the read model's position and what was read, on one
    connection) once its position is at least ``min_position``, polling ``read()``
    itself for at most the configured wait; then whether it is stale.

    The position and the rows come from the same database. Polling a checkpoint and
    then reading on another connection would not do: a pool spread over several
    streaming replicas can answer the wait from one and the read from another that
    lags behind it.
    """
    timeout: float = request.app.state.min_position_timeout
    answer: tuple[int, T] | None = None

    async def position() -> int:
        nonlocal answer
        answer = await read()
        return answer[0]

    reached = await wait_for_position(position, min_position, timeout)
    assert answer is not None
    return answer[0], answer[1], reached.stale


def _headers(position: int, stale: bool) -> dict[str, str]:
    headers = {POSITION_HEADER: str(position)}
    if stale:
        headers[STALE_HEADER] = "true"
    return headers


def _mark(response: Response, position: int, stale: bool) -> None:
    response.headers.update(_headers(position, stale))


def _cursor(cursor: str | None, kind: str, value_type: type[Any]) -> Any:
    if cursor is None:
        return None
    try:
        return decode_cursor(cursor, kind, value_type)
    except InvalidCursor as exc:
        raise ProblemError(400, "invalid_cursor", "The cursor is not valid", str(exc)) from exc


def _not_found(code: str, what: str, position: int, stale: bool) -> ProblemError:
    return ProblemError(404, code, f"{what} not found", headers=_headers(position, stale))


@router.get("/accounts/{account_id}", response_model=Account)
async def get_account(
    account_id: str, request: Request, response: Response, min_position: MinPosition = None
) -> dict[str, Any]:
    reader = _reader(request)
    position, row, stale = await _answer(request, min_position, lambda: reader.account(account_id))
    if row is None:
        raise _not_found("account_not_found", "Account", position, stale)
    _mark(response, position, stale)
    return row


@router.get("/accounts", response_model=AccountPage)
async def list_accounts(
    request: Request,
    response: Response,
    limit: Limit = 50,
    cursor: Cursor = None,
    min_position: MinPosition = None,
) -> dict[str, Any]:
    after = _cursor(cursor, "accounts", str)
    reader = _reader(request)
    position, rows, stale = await _answer(
        request, min_position, lambda: reader.accounts(after, limit)
    )
    _mark(response, position, stale)
    last = rows[-1]["account_id"] if len(rows) == limit else None
    return {"items": rows, "next_cursor": encode_cursor("accounts", last) if last else None}


@router.get("/accounts/{account_id}/transactions", response_model=TransactionPage)
async def list_transactions(
    account_id: str,
    request: Request,
    response: Response,
    limit: Limit = 50,
    cursor: Cursor = None,
    min_position: MinPosition = None,
) -> dict[str, Any]:
    before = _cursor(cursor, f"tx:{account_id}", int)
    reader = _reader(request)
    position, rows, stale = await _answer(
        request, min_position, lambda: reader.transactions(account_id, before, limit)
    )
    _mark(response, position, stale)
    last = rows[-1]["version"] if len(rows) == limit else None
    next_cursor = encode_cursor(f"tx:{account_id}", last) if last is not None else None
    items = [Transaction.model_validate(row) for row in rows]
    return {"account_id": account_id, "items": items, "next_cursor": next_cursor}


@router.get("/transfers/{transfer_id}", response_model=Transfer)
async def get_transfer(
    transfer_id: str, request: Request, response: Response, min_position: MinPosition = None
) -> dict[str, Any]:
    reader = _reader(request)
    position, row, stale = await _answer(
        request, min_position, lambda: reader.transfer(transfer_id)
    )
    if row is None:
        raise _not_found("transfer_not_found", "Transfer", position, stale)
    _mark(response, position, stale)
    return row


@router.get("/stats", response_model=Stats)
async def get_stats(
    request: Request, response: Response, min_position: MinPosition = None
) -> dict[str, Any]:
    position, stats, stale = await _answer(request, min_position, _reader(request).stats)
    _mark(response, position, stale)
    return stats


@router.get("/events", response_model=EventPage)
async def list_events(
    request: Request,
    response: Response,
    after: Annotated[int, Query(ge=0)] = 0,
    limit: Limit = 100,
    min_position: MinPosition = None,
) -> dict[str, Any]:
    """The raw log in commit order, read-only. ``X-Projection-Position`` is the log's
    head (the log is its own model)."""
    store: EventStore = request.app.state.store

    async def page() -> tuple[int, tuple[int, list[RecordedEvent]]]:
        head = await store.head_position()
        events = await store.read_all(after, limit)
        # How far the page shows the log: a full page ends before the log does; a short
        # one ends where the log did for the database that answered, which, behind a
        # service over several replicas, need not be the one that gave the head.
        shown = head if len(events) == limit else (events[-1].position if events else after)
        return shown, (max(head, events[-1].position if events else 0), events)

    _, (head, events), stale = await _answer(request, min_position, page)
    _mark(response, head, stale)
    items = [
        LogEvent(
            event_id=str(e.event_id),
            position=e.position,
            stream_id=e.stream_id,
            version=e.version,
            type=e.type,
            data=e.data,
            metadata=e.metadata,
            recorded_at=iso(e.recorded_at),
        )
        for e in events
    ]
    next_after = events[-1].position if events else after
    return {"events": items, "next_after": next_after, "head_position": head}
