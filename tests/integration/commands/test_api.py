"""The command API against real PostgreSQL: every route, every error code, and every
refusal leaves the log untouched."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from commands.events import AccountTransferLegRefused, encode
from eventstore import NewEvent
from tests.integration.commands.fakes import ConflictingStore
from tests.integration.commands.harness import Api, running_api, token

pytestmark = pytest.mark.postgres


def _id(prefix: str = "acc") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def _problem(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["code"] == code
    assert body["status"] == status
    assert body["title"]
    return body


async def test_open_account(api: Api) -> None:
    account = _id()
    response = await api.open(account, "Ada Lovelace")
    body = response.json()
    assert body["stream_id"] == f"account-{account}"
    assert body["version"] == 1
    assert body["events"] == [{"type": "AccountOpened", "version": 1, "position": body["position"]}]
    assert response.headers["etag"] == '"1"'
    assert response.headers["location"] == f"/v1/accounts/{account}"
    [event] = await api.log()
    assert event.position == body["position"]
    assert event.data == {"account_id": account, "owner": "Ada Lovelace"}
    assert event.metadata["actor"] == "alice"


async def test_open_account_generates_an_id(api: Api) -> None:
    response = await api.client.post("/v1/accounts", json={"owner": "Bob"})
    assert response.status_code == 201
    account = response.headers["location"].rsplit("/", 1)[1]
    uuid.UUID(account)
    assert response.json()["stream_id"] == f"account-{account}"


async def test_deposit_withdraw_close(api: Api) -> None:
    account = _id()
    await api.open(account)
    deposited = await api.deposit(account, 500)
    assert deposited.status_code == 200
    assert deposited.headers["etag"] == '"2"'
    assert deposited.json()["events"][0]["type"] == "MoneyDeposited"
    withdrawn = await api.client.post(f"/v1/accounts/{account}/withdrawals", json={"amount": 500})
    assert withdrawn.status_code == 200
    assert withdrawn.json()["version"] == 3
    closed = await api.client.post(f"/v1/accounts/{account}/close")
    assert closed.status_code == 200
    assert closed.json()["events"][0]["type"] == "AccountClosed"
    assert [e.type for e in await api.log()] == [
        "AccountOpened",
        "MoneyDeposited",
        "MoneyWithdrawn",
        "AccountClosed",
    ]
    positions = [e.position for e in await api.log()]
    assert positions == sorted(positions)
    assert closed.json()["position"] == positions[-1]


async def test_metadata_carries_correlation_causation_and_trace(api: Api) -> None:
    account = _id()
    traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    await api.open(
        account,
        headers={
            "X-Correlation-ID": "corr-1",
            "X-Causation-ID": "cause-1",
            "traceparent": traceparent,
        },
    )
    [event] = await api.log()
    assert event.metadata["correlation_id"] == "corr-1"
    assert event.metadata["causation_id"] == "cause-1"
    assert event.metadata["traceparent"] == traceparent
    response = await api.deposit(account, 1, headers={"traceparent": "garbage"})
    assert response.status_code == 200
    assert response.headers["x-correlation-id"]
    assert "traceparent" not in (await api.log())[-1].metadata


async def test_if_match_and_etag(api: Api) -> None:
    account = _id()
    await api.open(account)
    ok = await api.deposit(account, 5, headers={"If-Match": '"1"'})
    assert ok.status_code == 200
    assert ok.headers["etag"] == '"2"'
    before = await api.log()
    stale = await api.deposit(account, 5, headers={"If-Match": '"1"'})
    body = _problem(stale, 412, "precondition_failed")
    assert body["current_version"] == 2
    assert stale.headers["etag"] == '"2"'
    ahead = await api.deposit(account, 5, headers={"If-Match": '"9"'})
    assert _problem(ahead, 412, "precondition_failed")["current_version"] == 2
    assert await api.log() == before
    for bad in ["1", '"x"', 'W/"1"', '"-1"']:
        response = await api.deposit(account, 5, headers={"If-Match": bad})
        _problem(response, 400, "invalid_header")
    assert await api.log() == before


async def test_if_match_zero_opens_only_a_new_stream(api: Api) -> None:
    account = _id()
    first = await api.client.post(
        "/v1/accounts", json={"account_id": account, "owner": "A"}, headers={"If-Match": '"0"'}
    )
    assert first.status_code == 201
    again = await api.client.post(
        "/v1/accounts", json={"account_id": account, "owner": "A"}, headers={"If-Match": '"0"'}
    )
    _problem(again, 412, "precondition_failed")


@pytest.mark.parametrize(
    ("body", "location"),
    [
        ({"amount": -5}, "amount"),
        ({"amount": 0}, "amount"),
        ({"amount": 10**12 + 1}, "amount"),
        ({"amount": 10**40}, "amount"),
        ({"amount": "5"}, "amount"),
        ({"amount": 5.5}, "amount"),
        ({"amount": 5.0}, "amount"),
        ({"amount": True}, "amount"),
        ({"amount": None}, "amount"),
        ({}, "amount"),
        ({"amount": 5, "extra": 1}, "extra"),
        ([5], None),
        ("five", None),
    ],
)
async def test_invalid_bodies_are_422_and_write_nothing(
    api: Api, body: Any, location: str | None
) -> None:
    account = _id()
    await api.open(account)
    before = await api.log()
    response = await api.client.post(f"/v1/accounts/{account}/deposits", json=body)
    problem = _problem(response, 422, "validation_failed")
    if location is not None:
        assert any(error["loc"][-1] == location for error in problem["errors"])
    assert await api.log() == before


async def test_malformed_json_is_400(api: Api) -> None:
    account = _id()
    await api.open(account)
    before = await api.log()
    for content in [b'{"amount": ', b"{amount: 5}", b"\xff\xfe"]:
        response = await api.client.post(
            f"/v1/accounts/{account}/deposits",
            content=content,
            headers={"Content-Type": "application/json"},
        )
        _problem(response, 400, "malformed_json")
    assert await api.log() == before


@pytest.mark.parametrize(
    "body",
    [
        {"owner": ""},
        {"owner": "x" * 201},
        {"owner": "bad\u0000"},
        {"account_id": "has space", "owner": "A"},
        {"account_id": "-leading", "owner": "A"},
        {"account_id": "x" * 65, "owner": "A"},
        {"account_id": 7, "owner": "A"},
        {"account_id": "a1"},
    ],
)
async def test_invalid_accounts_are_refused(api: Api, body: dict[str, Any]) -> None:
    response = await api.client.post("/v1/accounts", json=body)
    _problem(response, 422, "validation_failed")
    assert await api.log() == []


async def test_an_invalid_account_id_in_the_path_is_422(api: Api) -> None:
    response = await api.client.post("/v1/accounts/bad%20id/deposits", json={"amount": 1})
    _problem(response, 422, "validation_failed")


async def test_unknown_accounts_are_404_and_write_nothing(api: Api) -> None:
    account = _id()
    for path, body in [
        (f"/v1/accounts/{account}/deposits", {"amount": 1}),
        (f"/v1/accounts/{account}/withdrawals", {"amount": 1}),
        (f"/v1/accounts/{account}/close", None),
    ]:
        response = await api.client.post(path, json=body)
        _problem(response, 404, "account_not_found")
    known = _id()
    await api.open(known)
    for source, target in [(account, known), (known, account)]:
        response = await api.client.post(
            "/v1/transfers", json={"from_account": source, "to_account": target, "amount": 1}
        )
        _problem(response, 404, "account_not_found")
    assert len(await api.log()) == 1


async def test_a_stream_with_only_a_refused_transfer_leg_is_no_account(api: Api) -> None:
    # A leg refused to an account never opened is recorded in its stream (the step's one
    # outcome); the account still does not exist.
    ghost, known = _id(), _id()
    await api.open(known)
    refusal = AccountTransferLegRefused(
        account_id=ghost, transfer_id="t-1", leg="credit", amount=5, reason="account_not_found"
    )
    await api.store.append(f"account-{ghost}", [NewEvent(*encode(refusal))])
    response = await api.client.post(
        "/v1/transfers", json={"from_account": known, "to_account": ghost, "amount": 1}
    )
    _problem(response, 404, "account_not_found")
    response = await api.client.post(f"/v1/accounts/{ghost}/deposits", json={"amount": 1})
    _problem(response, 404, "account_not_found")


async def test_domain_refusals_are_422_and_write_nothing(api: Api) -> None:
    account, closed = _id(), _id()
    await api.open(account)
    await api.deposit(account, 10)
    await api.open(closed)
    await api.client.post(f"/v1/accounts/{closed}/close")
    before = await api.log()
    cases = [
        (f"/v1/accounts/{account}/withdrawals", {"amount": 11}, "insufficient_funds"),
        (f"/v1/accounts/{account}/close", None, "account_not_empty"),
        (f"/v1/accounts/{closed}/deposits", {"amount": 1}, "account_closed"),
        (f"/v1/accounts/{closed}/withdrawals", {"amount": 1}, "account_closed"),
        (f"/v1/accounts/{closed}/close", None, "account_closed"),
        ("/v1/transfers", {"from_account": account, "to_account": account, "amount": 1},
         "same_account_transfer"),
    ]  # fmt: skip
    for path, body, code in cases:
        _problem(await api.client.post(path, json=body), 422, code)
    assert await api.log() == before


async def test_balance_limit(api: Api) -> None:
    account = _id()
    await api.open(account)
    deposit = {"account_id": account, "amount": 10**12}
    await api.store.append(
        f"account-{account}", [NewEvent("MoneyDeposited", deposit) for _ in range(1000)]
    )
    response = await api.deposit(account, 1)
    _problem(response, 422, "balance_limit_exceeded")


async def test_conflicts_409(api: Api) -> None:
    account = _id()
    await api.open(account)
    _problem(
        await api.client.post("/v1/accounts", json={"account_id": account, "owner": "B"}),
        409,
        "account_already_exists",
    )
    other = _id()
    await api.open(other)
    body = {"transfer_id": _id("tr"), "from_account": account, "to_account": other, "amount": 1}
    assert (await api.client.post("/v1/transfers", json=body)).status_code == 202
    _problem(await api.client.post("/v1/transfers", json=body), 409, "transfer_already_exists")


async def test_body_size_limit_is_413(api: Api) -> None:
    account = _id()
    await api.open(account)
    big = b'{"amount": 5, "pad": "' + b"x" * 20_000 + b'"}'
    response = await api.client.post(
        f"/v1/accounts/{account}/deposits",
        content=big,
        headers={"Content-Type": "application/json"},
    )
    assert _problem(response, 413, "payload_too_large")["max_bytes"] == 16 * 1024

    async def chunks() -> Any:
        for _ in range(40):
            yield b"x" * 1000

    streamed = await api.client.post(f"/v1/accounts/{account}/deposits", content=chunks())
    _problem(streamed, 413, "payload_too_large")
    assert len(await api.log()) == 1


async def test_unknown_routes_and_methods(api: Api) -> None:
    _problem(await api.client.post("/v1/nothing", json={}), 404, "not_found")
    _problem(await api.client.get("/v1/accounts"), 405, "method_not_allowed")


async def test_auth_is_required_and_scoped(api: Api) -> None:
    account = _id()
    path, body = "/v1/accounts", {"account_id": account, "owner": "A"}
    cases = [
        ({"Authorization": ""}, 401, "unauthorized"),
        ({"Authorization": "Basic dXNlcjpwYXNz"}, 401, "unauthorized"),
        ({"Authorization": "Bearer not-a-jwt"}, 401, "unauthorized"),
        ({"Authorization": f"Bearer {token(secret='another-secret-of-enough-length!')}"}, 401,
         "unauthorized"),
        ({"Authorization": f"Bearer {token(expires_in=-120)}"}, 401, "unauthorized"),
        ({"Authorization": f"Bearer {token(scope='ledger:read')}"}, 403, "forbidden"),
        ({"Authorization": f"Bearer {token(scope=None)}"}, 403, "forbidden"),
    ]  # fmt: skip
    for headers, status, code in cases:
        response = await api.client.post(path, json=body, headers=headers)
        _problem(response, status, code)
        assert response.headers["www-authenticate"].startswith("Bearer")
    assert await api.log() == []
    listed = await api.client.post(
        path, json=body, headers={"Authorization": f"Bearer {token('bob', scp=['ledger:write'])}"}
    )
    assert listed.status_code == 201
    assert (await api.log())[0].metadata["actor"] == "bob"


async def test_auth_disabled_records_anonymous(pg_url: str) -> None:
    async with running_api(pg_url, auth=False) as api:
        await api.open(_id())
        assert (await api.log())[0].metadata["actor"] == "anonymous"


async def test_health_ready_metrics(api: Api) -> None:
    assert (await api.client.get("/healthz")).json() == {"status": "ok"}
    ready = await api.client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"eventstore": "ok", "transfer_manager": "ok"}
    await api.open(_id())
    metrics = (await api.client.get("/metrics")).text
    assert 'chronicle_commands_total{command="OpenAccount",outcome="ok"} 1.0' in metrics
    assert 'http_requests_total{method="POST",route="/v1/accounts",status="201"} 1.0' in metrics


async def test_store_unavailable_is_503(pg_url: str) -> None:
    async with running_api(pg_url, auth=False) as healthy:
        await healthy.open("acc-down")
    down = "postgresql://postgres@127.0.0.1:1/nowhere"
    async with running_api(down, auth=False, transfer_manager=False) as api:
        response = await api.deposit("acc-down", 5)
        assert _problem(response, 503, "store_unavailable")
        assert response.headers["retry-after"] == "1"
        ready = await api.client.get("/readyz")
        body = _problem(ready, 503, "not_ready")
        assert body["checks"]["eventstore"] != "ok"
        assert (await api.client.get("/healthz")).status_code == 200


async def test_openapi_documents_every_route_with_examples(api: Api) -> None:
    spec = (await api.client.get("/openapi.json")).json()
    operations = [
        (path, method, operation)
        for path, item in spec["paths"].items()
        for method, operation in item.items()
    ]
    assert {path for path, _, _ in operations} == {
        "/v1/accounts",
        "/v1/accounts/{account_id}/deposits",
        "/v1/accounts/{account_id}/withdrawals",
        "/v1/accounts/{account_id}/close",
        "/v1/transfers",
        "/healthz",
        "/readyz",
        "/metrics",
    }
    for path, _, operation in operations:
        for status, response in operation["responses"].items():
            content = next(iter(response["content"].values()))
            assert "example" in content or "examples" in content, (path, status)
        if not path.startswith("/v1/"):
            continue
        if "requestBody" in operation:
            content = operation["requestBody"]["content"]["application/json"]
            assert content["example"], path
            assert content["schema"]["examples"], path
        headers = {p["name"] for p in operation["parameters"] if p["in"] == "header"}
        assert {"If-Match", "Idempotency-Key", "traceparent"} <= headers
        assert operation["security"] == [{"HTTPBearer": []}]
    assert "HTTPBearer" in spec["components"]["securitySchemes"]


async def test_concurrency_conflict_after_retries_is_409(pg_url: str) -> None:
    account = _id()
    async with running_api(pg_url) as healthy:
        await healthy.open(account)
        key = {"Idempotency-Key": f"key-{uuid.uuid4().hex}"}
        losing = ConflictingStore(healthy.store)
        async with running_api(pg_url, store=losing, command_attempts=2) as api:
            for headers in ({}, key):
                response = await api.deposit(account, 5, headers=headers)
                _problem(response, 409, "concurrency_conflict")
                assert response.headers["retry-after"] == "1"
        assert len(await healthy.log()) == 1
        # Nothing was written, so the key is free for the client's retry.
        retried = await healthy.deposit(account, 5, headers=key)
        assert retried.status_code == 200
        assert "idempotent-replayed" not in retried.headers
