"""Who may subscribe to what: JWT bearer tokens (PyJWT) and the grants they carry.

A token comes in the ``Authorization: Bearer`` header of the upgrade request or in a
first ``{"op":"auth"}`` frame (browsers cannot set headers); never in the URL, which
ends up in logs. Keys: an HS256 secret or a JWKS URL (asymmetric keys by ``kid``).
Tokens need ``exp`` and ``sub``; ``aud``/``iss`` and a read scope are checked when set.
A connection is closed with 1008 when its token expires (the client reconnects with a
fresh one and resumes).

Claims that limit a client (optional; without both, the client may read everything):

* ``streams``: stream ids it may subscribe to;
* ``categories``: stream categories it may subscribe to.

A limited client's every subscription must name only allowed streams (or streams of
allowed categories), or only allowed categories; a filter by types alone is too wide.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from eventstore.model import category_of
from eventstore.tokens import InvalidToken, bearer_token, token_scopes
from ws_bridge.errors import Forbidden, Unauthenticated
from ws_bridge.protocol import Filter
from ws_bridge.settings import BridgeSettings


@dataclass(frozen=True, slots=True)
class Grant:
    """What one client may read: everything, or the given streams and categories."""

    subject: str
    streams: frozenset[str] | None = None
    categories: frozenset[str] | None = None
    expires_at: float | None = None
    """Unix time after which the token (with the leeway) is no longer valid."""

    @property
    def unrestricted(self) -> bool:
        return self.streams is None and self.categories is None

    def check(self, wanted: Filter) -> None:
        """Return when ``wanted`` stays inside the grant; raise Forbidden otherwise."""
        if self.unrestricted:
            return
        streams, categories = self.streams or frozenset(), self.categories or frozenset()
        if wanted.streams:
            denied = [
                s for s in wanted.streams if s not in streams and category_of(s) not in categories
            ]
            if denied:
                raise Forbidden(f"not allowed to read streams {sorted(denied)}")
            return
        if not wanted.categories:
            raise Forbidden("this token may only subscribe to named streams or categories")
        denied = sorted(wanted.categories - categories)
        if denied:
            raise Forbidden(f"not allowed to read categories {denied}")


ANONYMOUS = Grant("anonymous")


class Authenticator:
    """Turns a bearer token into a :class:`Grant`, or raises Unauthenticated."""

    def __init__(self, settings: BridgeSettings) -> None:
        self.enabled = settings.auth == "enabled"
        self._tokens = settings.token_verifier()
        self._scope = settings.jwt_read_scope

    async def from_header(self, authorization: str) -> Grant:
        """The grant of an ``Authorization: Bearer <token>`` header value."""
        try:
            token = bearer_token(authorization)
        except InvalidToken as exc:
            raise Unauthenticated(str(exc)) from exc
        return await self.from_token(token)

    async def from_token(self, token: str) -> Grant:
        """The grant of a token; raises Unauthenticated when it is not valid now."""
        if not self.enabled:
            return ANONYMOUS
        claims = await self._verify(token)
        if self._scope is not None and self._scope not in token_scopes(claims):
            raise Unauthenticated(f"the token lacks the scope {self._scope!r}")
        return Grant(
            subject=str(claims["sub"]),
            streams=_names(claims, "streams"),
            categories=_names(claims, "categories"),
            expires_at=float(claims["exp"]) + self._tokens.leeway,
        )

    async def _verify(self, token: str) -> dict[str, Any]:
        try:
            return await self._tokens.verify(token)
        except InvalidToken as exc:
            raise Unauthenticated(str(exc)) from exc


def _names(claims: dict[str, Any], key: str) -> frozenset[str] | None:
    value = claims.get(key)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise Unauthenticated(f"the {key!r} claim must be a list of strings")
    return frozenset(value)
