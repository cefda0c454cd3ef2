"""JWT bearer authentication of the command API (PyJWT).

Keys come from the environment: an HS256 shared secret (``CHRONICLE_JWT_SECRET``) or a
JWKS URL (``CHRONICLE_JWT_JWKS_URL``, asymmetric keys selected by ``kid``). Every write
needs the scope ``CHRONICLE_JWT_WRITE_SCOPE`` (default ``ledger:write``) in the token's
``scope`` (space-separated) or ``scp`` (list) claim. The ``sub`` claim becomes the
``actor`` recorded in event metadata. With ``CHRONICLE_AUTH=disabled`` every request is
the actor ``anonymous``.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import Any

from commands.errors import Forbidden, Unauthenticated
from commands.settings import CommandsSettings
from eventstore.tokens import InvalidToken, bearer_token, token_scopes

ANONYMOUS = "anonymous"
_CACHE_SIZE = 10_000
_CACHE_SECONDS = 300.0


class Authenticator:
    """Turns an ``Authorization`` header into the actor, or raises an AuthError."""

    def __init__(self, settings: CommandsSettings) -> None:
        self._enabled = settings.auth == "enabled"
        self._tokens = settings.token_verifier()
        self._scope = settings.jwt_write_scope
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
        if self._scope not in token_scopes(claims):
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
            return await self._tokens.verify(token)
        except InvalidToken as exc:
            raise Unauthenticated(str(exc)) from exc


def _bearer(authorization: str | None) -> str:
    try:
        return bearer_token(authorization)
    except InvalidToken as exc:
        raise Unauthenticated(str(exc)) from exc
