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

import asyncio
from dataclasses import dataclass
from typing import Any

import jwt

from eventstore.model import category_of
from ws_bridge.errors import Forbidden, Unauthenticated
from ws_bridge.protocol import Filter
from ws_bridge.settings import BridgeSettings

_ASYMMETRIC = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA"]


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
        self._secret = settings.jwt_secret.get_secret_value() if settings.jwt_secret else None
        self._jwks = jwt.PyJWKClient(settings.jwt_jwks_url) if settings.jwt_jwks_url else None
        self._audience = settings.jwt_audience
        self._issuer = settings.jwt_issuer
        self._scope = settings.jwt_read_scope
        self._leeway = settings.jwt_leeway

    async def from_header(self, authorization: str) -> Grant:
        """The grant of an ``Authorization: Bearer <token>`` header value."""
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthenticated("the Authorization header must be 'Bearer <token>'")
        return await self.from_token(token.strip())

    async def from_token(self, token: str) -> Grant:
        """The grant of a token; raises Unauthenticated when it is not valid now."""
        if not self.enabled:
            return ANONYMOUS
        claims = await self._verify(token)
        if self._scope is not None and self._scope not in _scopes(claims):
            raise Unauthenticated(f"the token lacks the scope {self._scope!r}")
        return Grant(
            subject=str(claims["sub"]),
            streams=_names(claims, "streams"),
            categories=_names(claims, "categories"),
            expires_at=float(claims["exp"]) + self._leeway,
        )

    async def _verify(self, token: str) -> dict[str, Any]:
        try:
            if self._jwks is not None:
                # PyJWKClient fetches the key set over blocking HTTP (cached afterwards).
                signing = await asyncio.to_thread(self._jwks.get_signing_key_from_jwt, token)
                key: Any = signing.key
                algorithms = _ASYMMETRIC
            else:
                key, algorithms = self._secret, ["HS256"]
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=algorithms,
                audience=self._audience,
                issuer=self._issuer,
                leeway=self._leeway,
                options={"require": ["exp", "sub"], "verify_aud": self._audience is not None},
            )
        except jwt.PyJWTError as exc:
            raise Unauthenticated(f"invalid token: {exc}") from exc
        return claims


def _names(claims: dict[str, Any], key: str) -> frozenset[str] | None:
    value = claims.get(key)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise Unauthenticated(f"the {key!r} claim must be a list of strings")
    return frozenset(value)


def _scopes(claims: dict[str, Any]) -> set[str]:
    found: set[str] = set()
    for claim in ("scope", "scp"):
        value = claims.get(claim)
        if isinstance(value, str):
            found.update(value.split())
        elif isinstance(value, list):
            found.update(str(item) for item in value)
    return found
