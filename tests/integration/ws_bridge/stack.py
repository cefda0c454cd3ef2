"""The real pipeline as subprocesses for the bridge's tests: commands, relay, bridge
replicas (and, when present in this build, projector and queries), plus nginx in front
of the bridges. Every process writes its log to the test's temp folder."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import aio_pika
import httpx
import pytest

from eventstore.bus import Topology
from tests import services

IN_CI = services.IN_CI
STREAM_MAX_BYTES = 50 << 20
STREAM_SEGMENT_BYTES = 1 << 20


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def require_tool(name: str, path: str | None) -> str:
    """The tool's path; a missing one fails under CI=true and skips elsewhere."""
    if path and Path(path).exists():
        return path
    message = f"{name} is not installed (scripts/ensure-test-tools.sh installs it)"
    if IN_CI:
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def wait_until(condition: object, timeout: float, what: str) -> None:
    """Poll ``condition()`` (a callable) until true; fail with ``what`` after ``timeout``."""
    assert callable(condition)
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


def _http_ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1.0).status_code == 200
    except httpx.HTTPError:
        return False


@dataclass
class Process:
    """One `chronicle serve <verb>` subprocess."""

    verb: str
    env: dict[str, str]
    log_path: Path
    port: int = field(default_factory=free_port)
    popen: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Process:
        chronicle = str(Path(sys.executable).with_name("chronicle"))
        env = {**os.environ, **self.env, "CHRONICLE_HTTP_PORT": str(self.port)}
        with self.log_path.open("ab") as log:
            self.popen = subprocess.Popen(
                [chronicle, "serve", self.verb], env=env, stdout=log, stderr=log
            )
        return self

    def wait_ready(self, timeout: float = 30.0) -> Process:
        def ready() -> bool:
            if self.popen is not None and self.popen.poll() is not None:
                raise AssertionError(f"{self.verb} exited: {self.log_path.read_text()[-3000:]}")
            return _http_ok(f"{self.url}/readyz")

        wait_until(ready, timeout, f"{self.verb} on {self.port} to be ready")
        return self

    def signal(self, sig: int) -> None:
        if self.popen is not None and self.popen.poll() is None:
            self.popen.send_signal(sig)

    def kill(self) -> None:
        """SIGKILL, reaped at once (a crash, as far as clients can tell)."""
        if self.popen is not None:
            self.popen.kill()
            self.popen.wait()

    def restart(self) -> Process:
        """Start again on the same port, once the previous process has exited."""
        if self.popen is not None:
            self.popen.wait()
        return self.start()

    def stop(self, timeout: float = 15.0) -> int | None:
        if self.popen is None:
            return None
        self.signal(signal.SIGTERM)
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            return self.popen.wait()


@dataclass
class Stack:
    """A database, a broker prefix and the processes started on them."""

    tmp: Path
    database_url: str
    amqp_url: str
    prefix: str = field(default_factory=lambda: services.unique_name("t_bridge"))
    processes: list[Process] = field(default_factory=list)

    def env(self, **extra: str) -> dict[str, str]:
        return {
            "CHRONICLE_EVENTSTORE_URL": self.database_url,
            "CHRONICLE_BROKER_URL": self.amqp_url,
            "CHRONICLE_BROKER_PREFIX": self.prefix,
            "CHRONICLE_BROKER_STREAM_MAX_BYTES": str(STREAM_MAX_BYTES),
            "CHRONICLE_BROKER_STREAM_SEGMENT_BYTES": str(STREAM_SEGMENT_BYTES),
            "CHRONICLE_AUTH": "disabled",
            "CHRONICLE_TRANSFER_MANAGER": "false",
            "CHRONICLE_POOL_SIZE": "5",
            "CHRONICLE_LOG_LEVEL": "WARNING",
            **extra,
        }

    def start(self, verb: str, name: str, port: int | None = None, **extra: str) -> Process:
        process = Process(verb, self.env(**extra), self.tmp / f"{name}.log")
        if port is not None:
            process.port = port
        self.processes.append(process)
        return process.start()

    def stop_all(self) -> None:
        for process in reversed(self.processes):
            process.stop()

    async def delete_broker_objects(self, queue_names: Iterable[str] = ()) -> None:
        topology = Topology(prefix=self.prefix)
        connection = await aio_pika.connect(self.amqp_url)
        async with connection:
            channel = await connection.channel()
            for name in queue_names:
                await channel.queue_delete(topology.queue_name(name))
            await channel.queue_delete(topology.broadcast)
            await channel.exchange_delete(topology.exchange)


NGINX_CONF = """
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
{user}
events {{ worker_connections 4096; }}
http {{
  access_log off;
  client_body_temp_path {dir}/body;
  proxy_temp_path {dir}/proxy;
  fastcgi_temp_path {dir}/fastcgi;
  uwsgi_temp_path {dir}/uwsgi;
  scgi_temp_path {dir}/scgi;
  map $http_upgrade $connection_upgrade {{ default upgrade; '' close; }}
  upstream bridges {{
{servers}
  }}
  server {{
    listen 127.0.0.1:{port};
    location / {{
      proxy_pass http://bridges;
      proxy_http_version 1.1;
      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Connection $connection_upgrade;
      proxy_set_header Host $host;
      proxy_connect_timeout 2s;
      proxy_read_timeout 3600s;
      proxy_buffering off;
    }}
  }}
}}
"""


class Nginx:
    """nginx (the Debian package) load-balancing WebSocket upgrades round-robin."""

    def __init__(self, folder: Path, upstream_ports: list[int]) -> None:
        self.binary = require_tool("nginx", shutil.which("nginx") or "/usr/sbin/nginx")
        self.dir = folder
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        servers = "\n".join(
            f"    server 127.0.0.1:{p} max_fails=1 fail_timeout=30s;" for p in upstream_ports
        )
        # Running as root, nginx's workers would switch to "nobody", who cannot write
        # the temp folders of this test.
        user = "user root;" if os.geteuid() == 0 else ""
        conf = NGINX_CONF.format(dir=self.dir, user=user, servers=servers, port=self.port)
        (self.dir / "nginx.conf").write_text(conf)
        self.popen: subprocess.Popen[bytes] | None = None

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/v1/ws"

    def start(self) -> Nginx:
        with (self.dir / "stdout.log").open("ab") as log:
            self.popen = subprocess.Popen(
                [
                    self.binary,
                    "-p",
                    str(self.dir),
                    "-c",
                    str(self.dir / "nginx.conf"),
                    "-g",
                    "daemon off;",
                ],
                stdout=log,
                stderr=log,
            )
        wait_until(lambda: _http_ok(f"http://127.0.0.1:{self.port}/healthz"), 15, "nginx")
        return self

    def stop(self) -> None:
        if self.popen is not None and self.popen.poll() is None:
            self.popen.send_signal(signal.SIGQUIT)
            try:
                self.popen.wait(10)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
