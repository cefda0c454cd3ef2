"""`chronicle serve commands` as a real process: refuses to start without a key, serves
on SQLite and PostgreSQL, stops cleanly on SIGTERM; and JWKS keys over HTTP."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from commands.api.auth import Authenticator
from commands.errors import Unauthenticated
from commands.settings import CommandsSettings
from tests.integration.commands.harness import SECRET, token

CHRONICLE = str(Path(sys.executable).parent / "chronicle")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _env(**values: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHRONICLE_")}
    env.update(values)
    return env


async def test_serve_refuses_to_start_without_a_key(sqlite_url: str) -> None:
    process = await asyncio.create_subprocess_exec(
        CHRONICLE, "serve", "commands",
        env=_env(CHRONICLE_EVENTSTORE_URL=sqlite_url, CHRONICLE_HTTP_PORT=str(_free_port())),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, stderr = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 2
    assert b"CHRONICLE_JWT_SECRET" in stderr


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
async def test_serve_commands_until_sigterm(backend: str, request: pytest.FixtureRequest) -> None:
    url = request.getfixturevalue("sqlite_url" if backend == "sqlite" else "pg_url")
    port = _free_port()
    process = await asyncio.create_subprocess_exec(
        CHRONICLE, "serve", "commands",
        env=_env(CHRONICLE_EVENTSTORE_URL=url, CHRONICLE_HTTP_PORT=str(port),
                 CHRONICLE_JWT_SECRET=SECRET),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        base = f"http://127.0.0.1:{port}"
        async with httpx.AsyncClient(base_url=base) as client:
            await _until_ready(client, process)
            headers = {"Authorization": f"Bearer {token()}"}
            opened = await client.post(
                "/v1/accounts", json={"account_id": "served", "owner": "A"}, headers=headers
            )
            assert opened.status_code == 201, opened.text
            refused = await client.post("/v1/accounts", json={"owner": "A"})
            assert refused.status_code == 401
            assert "chronicle_commands_total" in (await client.get("/metrics")).text
        process.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.wait_for(process.communicate(), 20)
        assert process.returncode == 0, stderr.decode()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def _until_ready(client: httpx.AsyncClient, process: asyncio.subprocess.Process) -> None:
    async with asyncio.timeout(30):
        while True:
            assert process.returncode is None, "the server exited"
            try:
                if (await client.get("/readyz")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.05)


@pytest.fixture
def jwks_server() -> Iterator[tuple[str, rsa.RSAPrivateKey]]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    body = json.dumps({"keys": [{**jwk, "kid": "k1", "alg": "RS256", "use": "sig"}]}).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            return None

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/jwks.json", key
    finally:
        server.shutdown()
        thread.join()
        server.server_close()


async def test_jwks_keys(jwks_server: tuple[str, rsa.RSAPrivateKey]) -> None:
    url, key = jwks_server
    auth = Authenticator(CommandsSettings(jwt_jwks_url=url))
    claims = {"sub": "carol", "exp": int(time.time()) + 60, "scope": "ledger:write"}
    signed = jwt.encode(claims, key, algorithm="RS256", headers={"kid": "k1"})
    assert await auth.writer(f"Bearer {signed}") == "carol"
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    forged = jwt.encode(claims, other, algorithm="RS256", headers={"kid": "k1"})
    with pytest.raises(Unauthenticated):
        await auth.writer(f"Bearer {forged}")
    hs = jwt.encode(claims, "x" * 40, algorithm="HS256", headers={"kid": "k1"})
    with pytest.raises(Unauthenticated):
        await auth.writer(f"Bearer {hs}")
