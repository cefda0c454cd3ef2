"""Istio traffic rules checked offline, standing in for ``istioctl analyze``: the
VirtualService serves the Gateway's hosts and routes only to existing Services, ports and
DestinationRule subsets; weights sum to 100; the WebSocket route has no timeout and no
retries; commands are never retried on 5xx while reads are; faults exist only in the
fault drill, and only on the query routes; dev has no mesh at all."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.deploy.manifests import MESH_OVERLAYS, PRODUCTION_OVERLAYS, Manifests, selects

ISTIO_GROUPS = ("networking.istio.io", "security.istio.io")
UNSAFE_RETRY_ON = {"5xx", "gateway-error", "retriable-status-codes", "reset", "retriable-4xx"}


@pytest.fixture(params=MESH_OVERLAYS)
def mesh(request: pytest.FixtureRequest, rendered: dict[str, Manifests]) -> Manifests:
    overlay: str = request.param
    return rendered[overlay]


def routes(manifests: Manifests) -> Iterator[dict[str, Any]]:
    for service in manifests.of_kind("VirtualService"):
        yield from service["spec"]["http"]


def destinations(route: dict[str, Any]) -> list[dict[str, Any]]:
    return [r["destination"] for r in route.get("route", [])]


def test_virtual_service_serves_the_gateway_hosts(mesh: Manifests) -> None:
    gateway_hosts = {
        host for g in mesh.of_kind("Gateway") for s in g["spec"]["servers"] for host in s["hosts"]
    }
    for service in mesh.of_kind("VirtualService"):
        assert set(service["spec"]["gateways"]) <= mesh.names("Gateway")
        assert set(service["spec"]["hosts"]) <= gateway_hosts


def test_gateway_serves_https_and_redirects_http(mesh: Manifests) -> None:
    (gateway,) = mesh.of_kind("Gateway")
    by_protocol = {s["port"]["protocol"]: s for s in gateway["spec"]["servers"]}
    assert by_protocol["HTTPS"]["tls"]["mode"] == "SIMPLE"
    assert by_protocol["HTTP"]["tls"] == {"httpsRedirect": True}


def test_destinations_exist(mesh: Manifests) -> None:
    subsets = {
        rule["spec"]["host"]: {s["name"] for s in rule["spec"]["subsets"]}
        for rule in mesh.of_kind("DestinationRule")
    }
    for route in routes(mesh):
        for destination in destinations(route):
            service = mesh.get("Service", destination["host"])
            ports = {p["port"] for p in service["spec"]["ports"]}
            assert destination["port"]["number"] in ports, route["name"]
            assert destination["subset"] in subsets[destination["host"]], route["name"]


def test_routed_subsets_have_pods(mesh: Manifests) -> None:
    """A route to a subset with no pods answers 503 to every request it gets."""
    templates = [d["spec"]["template"]["metadata"]["labels"] for d in mesh.of_kind("Deployment")]
    subsets = {
        (rule["spec"]["host"], s["name"]): s["labels"]
        for rule in mesh.of_kind("DestinationRule")
        for s in rule["spec"]["subsets"]
    }
    for route in routes(mesh):
        for destination in destinations(route):
            selector = mesh.get("Service", destination["host"])["spec"]["selector"]
            labels = subsets[destination["host"], destination["subset"]]
            pods = [p for p in templates if selects(selector, p) and selects(labels, p)]
            assert pods, f"{route['name']}: {destination['host']}/{destination['subset']}"


def test_split_weights_sum_to_100(mesh: Manifests) -> None:
    for route in routes(mesh):
        targets = route.get("route", [])
        if len(targets) > 1:
            assert sum(t["weight"] for t in targets) == 100, route["name"]


def test_canary_splits_90_10_and_routes_a_header_to_v2(rendered: dict[str, Manifests]) -> None:
    by_name = {r["name"]: r for r in routes(rendered["canary"])}
    for api in ("commands", "queries"):
        weights = {d["destination"]["subset"]: d["weight"] for d in by_name[api]["route"]}
        assert weights == {"v1": 90, "v2": 10}
        pinned = by_name[f"{api}-v2"]
        assert [d["subset"] for d in destinations(pinned)] == ["v2"]
        assert all("x-chronicle-version" in m["headers"] for m in pinned["match"])


def test_websocket_route_has_no_timeout_and_no_retries(mesh: Manifests) -> None:
    for route in routes(mesh):
        if any(d["host"] == "bridge" for d in destinations(route)):
            assert route.get("timeout", "0s") == "0s", route["name"]
            assert route["retries"]["attempts"] == 0, route["name"]


def test_commands_are_not_retried_on_server_errors(mesh: Manifests) -> None:
    for route in routes(mesh):
        if any(d["host"] == "commands" for d in destinations(route)):
            retries = route["retries"]  # explicit: Istio retries 503 by default
            retry_on = set(retries.get("retryOn", "").split(","))
            assert retries["attempts"] == 0 or not retry_on & UNSAFE_RETRY_ON, route["name"]
            assert "timeout" in route, route["name"]


def test_reads_are_retried_with_bounded_tries(mesh: Manifests) -> None:
    for route in routes(mesh):
        if any(d["host"] == "queries" for d in destinations(route)):
            assert route["retries"]["attempts"] > 0, route["name"]
            assert "perTryTimeout" in route["retries"], route["name"]
            assert "timeout" in route, route["name"]
            assert {m["method"]["exact"] for m in route["match"]} == {"GET"}, route["name"]


def test_internal_endpoints_are_not_exposed(mesh: Manifests) -> None:
    (first, *_) = routes(mesh)
    paths = {m["uri"]["exact"] for m in first["match"]}
    assert paths == {"/healthz", "/readyz", "/metrics"}
    assert first["directResponse"]["status"] == 404


def test_faults_only_in_the_drill_and_only_on_queries(rendered: dict[str, Manifests]) -> None:
    for overlay in PRODUCTION_OVERLAYS:
        assert [r["name"] for r in routes(rendered[overlay]) if "fault" in r] == []
    drilled = [r for r in routes(rendered["fault-drill"]) if "fault" in r]
    assert drilled
    for route in drilled:
        assert {d["host"] for d in destinations(route)} == {"queries"}
        assert set(route["fault"]) == {"delay", "abort"}


def test_dev_has_no_mesh(rendered: dict[str, Manifests]) -> None:
    dev = rendered["dev"]
    assert [d["kind"] for d in dev.docs if d["apiVersion"].split("/")[0] in ISTIO_GROUPS] == []
    (namespace,) = dev.of_kind("Namespace")
    assert "istio-injection" not in namespace["metadata"].get("labels", {})
