"""JWT bearer tokens (PyJWT), verified the same way by every process that takes them.

Keys come from one of two places: an HS256 shared secret, or a JWKS URL whose
asymmetric keys are chosen by the token's ``kid``. A token must carry ``exp`` and
``sub``; ``aud`` and ``iss`` are checked when configured. What a process then allows
(scopes, streams) is its own business.
"""

from __future__ import annotations

import asyncio
from typing import Any, Literal

import jwt
from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

_ASYMMETRIC = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA"]


class InvalidToken(Exception):
    """No token, a malformed header, or a token that is not valid now (the message says
    which; it never contains the token)."""


class TokenVerifier:
    """Checks signatures and standard claims; returns the claims of a valid token."""

    def __init__(
        self,
        *,
        secret: str | None,
        jwks_url: str | None,
        audience: str | None = None,
        issuer: str | None = None,
        leeway: float = 0.0,
    ) -> None:
        self._secret = secret
        self._jwks = jwt.PyJWKClient(jwks_url) if jwks_url else None
        self._audience = audience
        self._issuer = issuer
        self.leeway = leeway

    async def verify(self, token: str) -> dict[str, Any]:
        """The token's claims; InvalidToken when it is not valid now."""
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
                leeway=self.leeway,
                options={"require": ["exp", "sub"], "verify_aud": self._audience is not None},
            )
        except jwt.PyJWTError as exc:
            raise InvalidToken(f"invalid token: {exc}") from exc
        return claims


class TokenSettings(BaseSettings):
    """``CHRONICLE_AUTH`` and the ``CHRONICLE_JWT_*`` keys, shared by every process that
    takes tokens (mixed into its settings class)."""

    model_config = SettingsConfigDict(env_prefix="CHRONICLE_", extra="ignore")

    auth: Literal["enabled", "disabled"] = Field(
        default="enabled", description="'disabled' runs without JWT checks (development)"
    )
    jwt_secret: SecretStr | None = Field(default=None, description="HS256 shared secret")
    jwt_jwks_url: str | None = Field(default=None, description="JWKS URL for RS/ES/EdDSA keys")
    jwt_audience: str | None = Field(default=None, description="required 'aud', if set")
    jwt_issuer: str | None = Field(default=None, description="required 'iss', if set")
    jwt_leeway: float = Field(default=30.0, ge=0, description="clock skew allowed (seconds)")

    def token_verifier(self) -> TokenVerifier:
        return TokenVerifier(
            secret=self.jwt_secret.get_secret_value() if self.jwt_secret else None,
            jwks_url=self.jwt_jwks_url,
            audience=self.jwt_audience,
            issuer=self.jwt_issuer,
            leeway=self.jwt_leeway,
        )

    def auth_problem(self) -> str | None:
        """Why these settings cannot serve (no key, or two), or None when they can."""
        if self.auth == "disabled":
            return None
        if self.jwt_secret is None and self.jwt_jwks_url is None:
            return (
                "set CHRONICLE_JWT_SECRET or CHRONICLE_JWT_JWKS_URL, "
                "or CHRONICLE_AUTH=disabled to run without authentication"
            )
        if self.jwt_secret is not None and self.jwt_jwks_url is not None:
            return "set one of CHRONICLE_JWT_SECRET, CHRONICLE_JWT_JWKS_URL"
        return None


def bearer_token(authorization: str | None) -> str:
    """The token of an ``Authorization: Bearer <token>`` header value."""
    if not authorization:
        raise InvalidToken("an Authorization: Bearer token is required")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise InvalidToken("the Authorization header must be 'Bearer <token>'")
    return token.strip()


def token_scopes(claims: dict[str, Any]) -> set[str]:
    """The scopes granted: the ``scope`` claim (space-separated) and ``scp`` (a list)."""
    found: set[str] = set()
    for claim in ("scope", "scp"):
        value = claims.get(claim)
        if isinstance(value, str):
            found.update(value.split())
        elif isinstance(value, list):
            found.update(str(item) for item in value)
    return found
