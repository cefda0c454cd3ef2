"""deploy/compose.yaml runs the same system for users with Docker: PostgreSQL, RabbitMQ,
the migrations first, then every process with its contract command and port, non-root
on a read-only root filesystem, from pinned images."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from tests.deploy.manifests import DEPLOY, PROCESSES, is_pinned


@pytest.fixture(scope="module")
def services() -> dict[str, Any]:
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text(encoding="utf-8"))
    services: dict[str, Any] = compose["services"]
    return services


def test_every_process_and_backing_service_runs(services: dict[str, Any]) -> None:
    assert set(services) == {*PROCESSES, "migrate", "postgres", "rabbitmq"}


def test_processes_follow_the_contract(services: dict[str, Any]) -> None:
    for name, process in PROCESSES.items():
        service = services[name]
        assert ("chronicle", *service["command"]) == process.args, name
        assert service["environment"]["CHRONICLE_HTTP_PORT"] == str(process.port), name
        assert str(process.port) in " ".join(service["healthcheck"]["test"]), name


def test_processes_wait_for_the_migrations(services: dict[str, Any]) -> None:
    assert services["migrate"]["command"] == ["migrate"]
    for name in PROCESSES:
        condition = services[name]["depends_on"]["migrate"]["condition"]
        assert condition == "service_completed_successfully", name
    for backing in ("postgres", "rabbitmq"):
        assert services["migrate"]["depends_on"][backing]["condition"] == "service_healthy"


def test_processes_are_hardened(services: dict[str, Any]) -> None:
    for name in [*PROCESSES, "migrate"]:
        service = services[name]
        assert service["user"].split(":")[0] != "0", name
        assert service["read_only"] is True, name
        assert service["cap_drop"] == ["ALL"], name


def test_images_are_pinned(services: dict[str, Any]) -> None:
    for name, service in services.items():
        assert is_pinned(service["image"]), name


def test_published_ports_stay_on_loopback(services: dict[str, Any]) -> None:
    for name, service in services.items():
        for mapping in service.get("ports", []):
            assert mapping.startswith("127.0.0.1:"), name
