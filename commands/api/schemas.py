"""Request and response bodies of the command API, with the examples OpenAPI shows."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from commands.domain.values import Amount, Identifier, Owner
from eventstore.web import PROBLEM_JSON, Problem, problem_body


class _Request(BaseModel):
    # Unknown members are refused: a typo must not silently become a default.
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class OpenAccountBody(_Request):
    account_id: Identifier | None = Field(
        default=None, description="chosen by the client; generated when absent"
    )
    owner: Owner

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"account_id": "acc-7f3a", "owner": "Ada Lovelace"}]}
    )


class AmountBody(_Request):
    amount: Amount

    model_config = ConfigDict(json_schema_extra={"examples": [{"amount": 2500}]})


class TransferBody(_Request):
    transfer_id: Identifier | None = Field(
        default=None, description="chosen by the client; generated when absent"
    )
    from_account: Identifier
    to_account: Identifier
    amount: Amount

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "transfer_id": "tr-91c2",
                    "from_account": "acc-7f3a",
                    "to_account": "acc-0b12",
                    "amount": 1500,
                }
            ]
        }
    )


class EventRef(BaseModel):
    type: str
    version: int
    position: int


class CommandResult(BaseModel):
    """What a command wrote. ``position`` is the consistency token for reads
    (``?min_position=`` on the query API)."""

    stream_id: str
    version: int
    position: int
    events: list[EventRef]


def result_example(stream_id: str, event_type: str, version: int = 1) -> dict[str, Any]:
    position = 281_479_271_677_953 + version
    return {
        "stream_id": stream_id,
        "version": version,
        "position": position,
        "events": [{"type": event_type, "version": version, "position": position}],
    }


_PROBLEMS: dict[str, tuple[int, str, dict[str, Any]]] = {
    "malformed_json": (400, "The body is not valid JSON", {}),
    "invalid_header": (400, "A header is not valid", {"header": "If-Match"}),
    "unauthorized": (401, "Authentication required", {}),
    "forbidden": (403, "Missing scope", {"required_scope": "ledger:write"}),
    "account_not_found": (404, "Account not found", {}),
    "transfer_not_found": (404, "Transfer not found", {}),
    "account_already_exists": (409, "Account already exists", {}),
    "transfer_already_exists": (409, "Transfer already exists", {}),
    "concurrency_conflict": (409, "The stream kept changing; try again", {}),
    "idempotency_key_in_progress": (409, "A request with this key is still running", {}),
    "precondition_failed": (412, "Version mismatch", {"current_version": 7}),
    "payload_too_large": (413, "The request body is too large", {"max_bytes": 16384}),
    "validation_failed": (
        422,
        "The request is not valid",
        {
            "errors": [
                {"loc": ["body", "amount"], "msg": "Input should be greater than 0", "type": "x"}
            ]
        },
    ),
    "idempotency_key_reused": (422, "Idempotency-Key reused for another request", {}),
    "insufficient_funds": (422, "Insufficient funds", {}),
    "account_closed": (422, "Account closed", {}),
    "account_not_empty": (422, "Account not empty", {}),
    "balance_limit_exceeded": (422, "Balance limit exceeded", {}),
    "same_account_transfer": (422, "Transfer to the same account", {}),
    "store_unavailable": (503, "Event store unavailable", {}),
}

_COMMON = [
    "malformed_json",
    "invalid_header",
    "unauthorized",
    "forbidden",
    "idempotency_key_in_progress",
    "concurrency_conflict",
    "precondition_failed",
    "payload_too_large",
    "validation_failed",
    "idempotency_key_reused",
    "store_unavailable",
]


def responses(status: int, example: dict[str, Any], *codes: str) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI ``responses`` of a route: its success, and every problem it may
    answer (the common ones plus ``codes``), each with an example."""
    documented: dict[int | str, dict[str, Any]] = {
        status: {
            "model": CommandResult,
            "content": {"application/json": {"example": example}},
            "headers": {"ETag": {"description": 'the stream\'s new version, e.g. "3"'}},
        }
    }
    by_status: dict[int, dict[str, Any]] = {}
    for code in [*_COMMON, *codes]:
        problem_status, title, extra = _PROBLEMS[code]
        body = problem_body(problem_status, code, title, **extra)
        by_status.setdefault(problem_status, {})[code] = {"summary": code, "value": body}
    for problem_status, examples in sorted(by_status.items()):
        documented[problem_status] = {
            "model": Problem,
            "content": {PROBLEM_JSON: {"examples": examples}},
        }
    return documented
