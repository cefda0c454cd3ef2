"""JWT grants: who may subscribe to what."""

from __future__ import annotations

import time

import jwt
import pytest
from pydantic import SecretStr

from ws_bridge.auth import Authenticator
from ws_bridge.errors import ConfigurationError, Forbidden, Unauthenticated
from ws_bridge.protocol import Filter
from ws_bridge.settings import BridgeSettings

SECRET = "unit-test-secret-of-enough-length-32b"


def _settings(**extra: object) -> BridgeSettings:
    return BridgeSettings(auth="enabled", jwt_secret=SecretStr(SECRET), **extra)  # type: ignore[arg-type]


def token(secret: str = SECRET, **claims: object) -> str:
    body = {"sub": "ada", "exp": int(time.time()) + 60, **claims}
    return jwt.encode(body, secret, algorithm="HS256")


async def test_a_valid_token_without_limits_may_read_everything() -> None:
    grant = await Authenticator(_settings()).from_header(f"Bearer {token()}")
    assert grant.subject == "ada"
    assert grant.unrestricted
    grant.check(Filter())


async def test_claims_limit_streams_and_categories() -> None:
    raw = token(streams=["account-a"], categories=["transfer"])
    grant = await Authenticator(_settings()).from_token(raw)
    grant.check(Filter(streams=frozenset({"account-a", "transfer-9"})))
    grant.check(Filter(categories=frozenset({"transfer"})))
    for refused in (
        Filter(),
        Filter(types=frozenset({"MoneyDeposited"})),
        Filter(streams=frozenset({"account-b"})),
        Filter(categories=frozenset({"account"})),
    ):
        with pytest.raises(Forbidden):
            grant.check(refused)


@pytest.mark.parametrize(
    "header",
    [
        "Bearer " + token(secret="another-secret-of-enough-length-32b"),
        "Bearer " + token(exp=int(time.time()) - 3600),
        "Basic abc",
        "Bearer ",
        "Bearer " + token(streams="account-a"),
    ],
)
async def test_bad_tokens_are_refused(header: str) -> None:
    with pytest.raises(Unauthenticated):
        await Authenticator(_settings()).from_header(header)


async def test_a_read_scope_is_required_when_configured() -> None:
    auth = Authenticator(_settings(jwt_read_scope="ledger:read"))
    await auth.from_token(token(scope="ledger:read other"))
    with pytest.raises(Unauthenticated):
        await auth.from_token(token(scope="ledger:write"))


async def test_disabled_auth_admits_anyone() -> None:
    auth = Authenticator(BridgeSettings(auth="disabled"))
    assert (await auth.from_token("anything")).unrestricted


def test_enabled_auth_needs_a_key() -> None:
    with pytest.raises(ConfigurationError):
        BridgeSettings(auth="enabled").check_auth()


async def test_a_grant_expires_with_its_token_plus_the_leeway() -> None:
    expiry = int(time.time()) + 60
    grant = await Authenticator(_settings(jwt_leeway=5)).from_token(token(exp=expiry))
    assert grant.expires_at == expiry + 5
