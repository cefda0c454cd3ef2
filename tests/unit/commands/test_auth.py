"""JWT bearer auth of the command API (HS256 here; JWKS in the integration tests)."""

from __future__ import annotations

import time

import jwt
import pytest

from commands.api.auth import ANONYMOUS, Authenticator
from commands.errors import ConfigurationError, Forbidden, Unauthenticated
from commands.settings import CommandsSettings

SECRET = "unit-test-secret-of-a-decent-length!"


def _token(**claims: object) -> str:
    payload = {"sub": "alice", "exp": int(time.time()) + 60, "scope": "ledger:write", **claims}
    return jwt.encode({k: v for k, v in payload.items() if v is not None}, SECRET, "HS256")


def _auth(**settings: object) -> Authenticator:
    return Authenticator(CommandsSettings(jwt_secret=SECRET, **settings))  # type: ignore[arg-type]


async def test_a_valid_token_yields_its_subject() -> None:
    assert await _auth().writer(f"Bearer {_token()}") == "alice"
    assert await _auth().writer(f"bearer {_token(scope='a ledger:write b')}") == "alice"
    assert await _auth().writer(f"Bearer {_token(scope=None, scp=['ledger:write'])}") == "alice"


@pytest.mark.parametrize(
    "header",
    [None, "", "Bearer", "Bearer ", "Token abc", "Bearer abc.def.ghi"],
)
async def test_missing_or_malformed_tokens_are_unauthenticated(header: str | None) -> None:
    with pytest.raises(Unauthenticated):
        await _auth().writer(header)


async def test_expired_unsigned_and_foreign_tokens_are_refused() -> None:
    with pytest.raises(Unauthenticated, match="expired"):
        await _auth().writer(f"Bearer {_token(exp=int(time.time()) - 120)}")
    with pytest.raises(Unauthenticated):
        await _auth().writer(f"Bearer {_token(sub=None)}")
    unsigned = jwt.encode({"sub": "x", "exp": int(time.time()) + 60}, None, "none")
    with pytest.raises(Unauthenticated):
        await _auth().writer(f"Bearer {unsigned}")
    foreign = jwt.encode({"sub": "x", "exp": int(time.time()) + 60}, "x" * 40, "HS256")
    with pytest.raises(Unauthenticated):
        await _auth().writer(f"Bearer {foreign}")


async def test_the_write_scope_is_required() -> None:
    with pytest.raises(Forbidden):
        await _auth().writer(f"Bearer {_token(scope='ledger:read')}")
    assert await _auth(jwt_write_scope="bank:w").writer(f"Bearer {_token(scope='bank:w')}")


async def test_audience_and_issuer_when_configured() -> None:
    auth = _auth(jwt_audience="chronicle", jwt_issuer="https://issuer")
    good = _token(aud="chronicle", iss="https://issuer")
    assert await auth.writer(f"Bearer {good}") == "alice"
    for bad in (_token(aud="other", iss="https://issuer"), _token(aud="chronicle")):
        with pytest.raises(Unauthenticated):
            await auth.writer(f"Bearer {bad}")


async def test_disabled_auth_is_anonymous() -> None:
    auth = Authenticator(CommandsSettings(auth="disabled"))
    assert await auth.writer(None) == ANONYMOUS


def test_serving_needs_a_key_unless_disabled() -> None:
    with pytest.raises(ConfigurationError, match="CHRONICLE_JWT_SECRET"):
        CommandsSettings(auth="enabled", jwt_secret=None, jwt_jwks_url=None).check_auth()
    with pytest.raises(ConfigurationError, match="one of"):
        CommandsSettings(jwt_secret=SECRET, jwt_jwks_url="http://x").check_auth()  # type: ignore[arg-type]
    CommandsSettings(auth="disabled").check_auth()
    CommandsSettings(jwt_secret=SECRET).check_auth()  # type: ignore[arg-type]
