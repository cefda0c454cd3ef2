"""`chronicle serve relay` as a real process: stdout is JSON lines at the level of
CHRONICLE_LOG_LEVEL, and the OTEL_* variables turn tracing on without breaking it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.integration.observability.pipeline import free_port
from tests.integration.ws_bridge.stack import wait_until

CHRONICLE = str(Path(sys.executable).with_name("chronicle"))


def _run_relay(tmp_path: Path, **env: str) -> list[dict[str, object]]:
    """Start the relay on an SQLite file and the memory bus, wait until ready, stop it
    with SIGTERM; its stdout, parsed line by line."""
    port = free_port()
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("CHRONICLE_", "OTEL_"))}
    clean.update(
        CHRONICLE_EVENTSTORE_URL=f"sqlite:///{tmp_path / 'log.db'}",
        CHRONICLE_BROKER_URL="memory://",
        CHRONICLE_HTTP_PORT=str(port),
        **env,
    )
    relay = subprocess.Popen(
        [CHRONICLE, "serve", "relay"], env=clean, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        _wait_ready(relay, port)
        relay.terminate()
        out, err = relay.communicate(timeout=30)
    finally:
        if relay.poll() is None:
            relay.kill()
            relay.communicate(timeout=10)
    assert relay.returncode == 0, err.decode()
    return [json.loads(line) for line in out.decode().splitlines() if line.strip()]


def _wait_ready(process: subprocess.Popen[bytes], port: int) -> None:
    def ready() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"relay exited: {process.communicate()[1].decode()}")
        try:
            return httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    wait_until(ready, 30, "the relay to be ready")


@pytest.mark.slow
def test_stdout_is_json_lines_at_the_configured_level(tmp_path: Path) -> None:
    lines = _run_relay(tmp_path, CHRONICLE_LOG_LEVEL="INFO")
    assert lines
    for line in lines:
        assert {"time", "level", "logger", "message", "trace_id", "correlation_id"} <= set(line)
    assert any(line["logger"] == "chronicle.run_relay" for line in lines)
    quiet = _run_relay(tmp_path, CHRONICLE_LOG_LEVEL="WARNING")
    assert all(line["level"] in {"WARNING", "ERROR", "CRITICAL"} for line in quiet)


@pytest.mark.slow
def test_otel_variables_turn_tracing_on(tmp_path: Path) -> None:
    lines = _run_relay(tmp_path, CHRONICLE_LOG_LEVEL="INFO", OTEL_TRACES_EXPORTER="console")
    assert any(line["message"] == "tracing on: exporters console" for line in lines)
