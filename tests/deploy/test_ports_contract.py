"""The manifests speak the process contract: each Deployment runs
``chronicle serve <process>``, sets CHRONICLE_HTTP_PORT to the process's default port,
and declares that same port as its container port, probe port, Service target and
Prometheus scrape port; the processes bind every interface in containers."""

from __future__ import annotations

import pytest

from tests.deploy.manifests import (
    PROCESSES,
    Manifests,
    container_port,
    env_of,
    main_container,
    ref,
)


def app_of(deployment: dict) -> str:
    app: str = deployment["spec"]["template"]["metadata"]["labels"]["app"]
    return app


def test_every_process_is_deployed(manifests: Manifests) -> None:
    apps = {app_of(d) for d in manifests.of_kind("Deployment")}
    assert apps == set(PROCESSES)


def test_command_line(manifests: Manifests) -> None:
    for deployment in manifests.of_kind("Deployment"):
        container = main_container(deployment)
        argv = (*container["command"], *container["args"])
        assert argv == PROCESSES[app_of(deployment)].args, ref(deployment)


def test_port_env_matches_the_default_and_the_container_port(manifests: Manifests) -> None:
    for deployment in manifests.of_kind("Deployment"):
        container = main_container(deployment)
        port = PROCESSES[app_of(deployment)].port
        assert env_of(container)["CHRONICLE_HTTP_PORT"] == str(port), ref(deployment)
        assert [p["containerPort"] for p in container["ports"]] == [port], ref(deployment)


@pytest.mark.parametrize("probe", ["startupProbe", "livenessProbe", "readinessProbe"])
def test_probes_hit_the_http_port(manifests: Manifests, probe: str) -> None:
    for deployment in manifests.of_kind("Deployment"):
        container = main_container(deployment)
        target = container[probe]["httpGet"]["port"]
        assert container_port(container, target) == PROCESSES[app_of(deployment)].port


def test_services_target_the_http_port(manifests: Manifests) -> None:
    for name, process in PROCESSES.items():
        service = manifests.get("Service", name)
        container = main_container(manifests.get("Deployment", name))
        (port,) = service["spec"]["ports"]
        assert port["port"] == process.port, name
        assert container_port(container, port["targetPort"]) == process.port, name


def test_service_monitors_scrape_a_named_service_port(manifests: Manifests) -> None:
    for name in PROCESSES:
        monitor = manifests.get("ServiceMonitor", name)
        service = manifests.get("Service", name)
        port_names = {p["name"] for p in service["spec"]["ports"]}
        (endpoint,) = monitor["spec"]["endpoints"]
        assert endpoint["port"] in port_names, name
        assert endpoint["path"] == "/metrics", name
        assert (
            monitor["spec"]["selector"]["matchLabels"].items()
            <= service["metadata"]["labels"].items()
        ), name


def test_processes_bind_every_interface(manifests: Manifests) -> None:
    assert manifests.config()["CHRONICLE_HTTP_HOST"] == "0.0.0.0"
