"""JWT bearer authentication of the command API (PyJWT).

Keys come from the environment: an HS256 shared secret (``CHRONICLE_JWT_SECRET``) or a
JWKS URL (``CHRONICLE_JWT_JWKS_URL``, asymmetric keys selected by ``kid``). Every write
needs the scope ``CHRONICLE_JWT_WRITE_SCOPE`` (default ``ledger:write``) in the token's
``scope`` (space-separated) or ``scp`` (list) claim. The ``sub`` claim becomes the
``actor`` recorded in event metadata. With ``CHRONICLE_AUTH=disabled`` every request is
the actor ``anonymous``.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from typing import Any

import jwt

from commands.errors import Forbidden, Unauthenticated
from commands.settings import CommandsSettings

ANONYMOUS = "anonymous"
_CACHE_SIZE = 10_000
_CACHE_SECONDS = 300.0
_ASYMMETRIC = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA"]


class Authenticator:
    """Turns an ``Authorization`` header into the actor, or raises an AuthError."""

    def __init__(self, settings: CommandsSettings) -> None:
        self._enabled = settings.auth == "enabled"
        self._secret = settings.jwt_secret.get_secret_value() if settings.jwt_secret else None
        self._jwks = jwt.PyJWKClient(settings.jwt_jwks_url) if settings.jwt_jwks_url else None
        self._audience = settings.jwt_audience
        self._issuer = settings.jwt_issuer
        self._scope = settings.jwt_write_scope
        self._leeway = settings.jwt_leeway
        # Verified tokens, so a client reusing its token pays the signature check once.
        # An entry lives until the token expires, and at most _CACHE_SECONDS (so a
        # rotated-out JWKS key stops being honoured soon after).
        self._verified: OrderedDict[str, tuple[str, float]] = OrderedDict()

    @property
    def enabled(self) -> bool:
        return self._enabled

    async def writer(self, authorization: str | None) -> str:
        """The actor allowed to write, from a ``Bearer`` token."""
        if not self._enabled:
            return ANONYMOUS
        token = _bearer(authorization)
        now = time.time()
        cached = self._verified.get(token)
        if cached is not None and cached[1] > now:
            return cached[0]
        claims = await self._verify(token)
        if self._scope not in _scopes(claims):
            raise Forbidden(f"the token lacks the scope {self._scope!r}")
        actor = str(claims["sub"])
        self._remember(token, actor, min(float(claims["exp"]), now + _CACHE_SECONDS))
        return actor

    def _remember(self, token: str, actor: str, until: float) -> None:
        self._verified[token] = (actor, until)
        self._verified.move_to_end(token)
        while len(self._verified) > _CACHE_SIZE:
            self._verified.popitem(last=False)

    async def _verify(self, token: str) -> dict[str, Any]:
        try:
            if self._jwks is not None:
                # PyJWKClient fetches the key set over blocking HTTP (cached afterwards).
                key: Any = (await asyncio.to_thread(self._jwks.get_signing_key_from_jwt, token)).key
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


def _bearer(authorization: str | None) -> str:
    if not authorization:
        raise Unauthenticated("an Authorization: Bearer token is required")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("the Authorization header must be 'Bearer <token>'")
    return token.strip()


def _scopes(claims: dict[str, Any]) -> set[str]:
    found: set[str] = set()
    for claim in ("scope", "scp"):
        value = claims.get(claim)
        if isinstance(value, str):
            found.update(value.split())
        elif isinstance(value, list):
            found.update(str(item) for item in value)
    return found
