"""From an HTTP request to a command run, and back: headers, idempotency, responses.

Routes build the command; :func:`dispatch` reads the command headers (``If-Match``,
``Idempotency-Key``, correlation/causation ids, ``traceparent``), runs the command
through the handler (inside the idempotency guard when a key is given), and answers
``{stream_id, version, position, events}`` with ``ETag: "<version>"``.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import BaseModel
from starlette.responses import Response

from commands.api.problems import problem_for
from commands.domain.decider import Aggregate, Command
from commands.errors import DomainError, PreconditionFailed
from commands.service.context import CommandContext, Outcome, derived_ids, random_ids
from commands.service.idempotency import KeyedRequest, Run, fingerprint
from commands.service.recovery import find_appended
from commands.storage.base import StoredResponse
from commands.write_side import WriteSide
from eventstore import EventIdConflict
from eventstore.web import PROBLEM_JSON, ProblemError

C = TypeVar("C", bound=Command)
S = TypeVar("S", bound=BaseModel)

BuildCommand = Callable[[uuid.UUID | None], C]
"""Makes the command; given a seed (the idempotency claim) it derives any generated id
from it, so a retried request targets the same new stream."""

_ETAG = re.compile(r'^"(\d{1,18})"$')
_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")
_ID = re.compile(r"^[\x21-\x7e]{1,200}$")
_TRACEPARENT = re.compile(r"^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$")


@dataclass(frozen=True, slots=True)
class CommandHeaders:
    """The command-related headers of a request, validated."""

    if_match: str | None = None
    idempotency_key: str | None = None
    correlation_id: str | None = None
    causation_id: str | None = None
    traceparent: str | None = None

    def expected_version(self) -> int | None:
        """The exact version ``If-Match: "<version>"`` asks for (None: no condition)."""
        if self.if_match is None or self.if_match.strip() == "*":
            return None
        match = _ETAG.match(self.if_match.strip())
        if match is None:
            raise _bad_header("If-Match", 'use a quoted version, e.g. If-Match: "3"')
        return int(match.group(1))

    def checked(self) -> CommandHeaders:
        """Self, after validating the free-form headers (400 ``invalid_header``)."""
        if self.idempotency_key is not None and not _KEY.match(self.idempotency_key):
            raise _bad_header("Idempotency-Key", "1-255 visible ASCII characters")
        for name, value in (
            ("X-Correlation-ID", self.correlation_id),
            ("X-Causation-ID", self.causation_id),
        ):
            if value is not None and not _ID.match(value):
                raise _bad_header(name, "1-200 visible ASCII characters")
        return self

    def context(self, actor: str) -> CommandContext:
        request_id = str(uuid.uuid4())
        traceparent = self.traceparent
        if traceparent is not None and not _TRACEPARENT.match(traceparent):
            traceparent = None  # W3C: an invalid traceparent is ignored, not refused
        return CommandContext(
            actor=actor,
            correlation_id=self.correlation_id or request_id,
            causation_id=self.causation_id or request_id,
            traceparent=traceparent,
        )


def _bad_header(name: str, hint: str) -> ProblemError:
    return ProblemError(400, "invalid_header", f"Invalid {name} header", hint, header=name)


@dataclass(frozen=True, slots=True)
class Reply:
    """How a route answers success: status, and an optional Location for the target."""

    status: int = 200
    location: Callable[[Any], str] | None = None


async def dispatch(
    side: WriteSide,
    aggregate: Aggregate[C, S],
    build: BuildCommand[C],
    *,
    actor: str,
    headers: CommandHeaders,
    request_path: str,
    body: BaseModel | None,
    reply: Reply,
    target_stream: str | None = None,
) -> Response:
    """Run the command and answer; see the module docstring."""
    headers = headers.checked()
    expected = headers.expected_version()
    context = headers.context(actor)
    if headers.idempotency_key is None:
        command = build(None)
        outcome = await side.handler.execute(
            aggregate, command, context, expected_version=expected, event_ids=random_ids
        )
        response, replayed = _success(outcome, command, reply), False
    else:
        keyed = KeyedRequest(
            actor=actor,
            key=headers.idempotency_key,
            fingerprint=fingerprint(
                request_path, body.model_dump_json() if body else "", headers.if_match or ""
            ),
            request_path=request_path,
            seen_version=side.states.peek_version(target_stream) if target_stream else 0,
        )

        async def run(attempt: Run) -> StoredResponse:
            return await _run_keyed(side, aggregate, build, attempt, context, expected, reply)

        response, replayed = await side.guard.run(keyed, run)
    return _to_http(response, replayed, context.correlation_id)


async def _run_keyed(
    side: WriteSide,
    aggregate: Aggregate[C, S],
    build: BuildCommand[C],
    attempt: Run,
    context: CommandContext,
    expected: int | None,
    reply: Reply,
) -> StoredResponse:
    """One run of a keyed request; refusals become stored responses too."""
    command = build(attempt.claim_id)
    ids = derived_ids(attempt.claim_id)
    stream_id = aggregate.stream_of(command)
    if attempt.recovering:
        done = await find_appended(side.store, stream_id, ids, after_version=attempt.seen_version)
        if done is not None:
            return _success(done, command, reply)
    try:
        outcome = await side.handler.execute(
            aggregate, command, context, expected_version=expected, event_ids=ids
        )
    except (DomainError, PreconditionFailed, EventIdConflict) as exc:
        # A late first owner may have appended meanwhile: its events answer for us.
        done = await find_appended(side.store, stream_id, ids, after_version=attempt.seen_version)
        if done is not None:
            return _success(done, command, reply)
        if isinstance(exc, EventIdConflict):
            raise
        return _refusal(problem_for(exc))
    return _success(outcome, command, reply)


def _success(outcome: Outcome, command: Command, reply: Reply) -> StoredResponse:
    body = {
        "stream_id": outcome.stream_id,
        "version": outcome.version,
        "position": outcome.position,
        "events": [
            {"type": event.type, "version": event.version, "position": event.position}
            for event in outcome.events
        ],
    }
    headers = {"etag": f'"{outcome.version}"'}
    if reply.location is not None:
        headers["location"] = reply.location(command)
    return StoredResponse(reply.status, json.dumps(body).encode(), headers)


def _refusal(problem: ProblemError) -> StoredResponse:
    response = problem.response()
    headers = {k: v for k, v in response.headers.items() if k not in ("content-length",)}
    headers.pop("content-type", None)
    return StoredResponse(problem.status_code, bytes(response.body), headers)


def _to_http(stored: StoredResponse, replayed: bool, correlation_id: str) -> Response:
    media_type = "application/json" if stored.status < 400 else PROBLEM_JSON
    headers = {**stored.headers, "x-correlation-id": correlation_id}
    if replayed:
        headers["idempotent-replayed"] = "true"
    return Response(stored.body, status_code=stored.status, headers=headers, media_type=media_type)
