"""Mesh security in the meshed overlays: STRICT mTLS, deny by default with one ALLOW per
workload whose principals are real service accounts (ours, or the gateway and Prometheus
identities docs/deploy.md installs), public routes that require a JWT principal from the
configured issuer, the processes configured with the same keys, sidecar egress limited to
the registry, and injection on for the namespace. Auth is never disabled in production."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.deploy.manifests import (
    EXTERNAL_PRINCIPALS,
    MESH_OVERLAYS,
    NAMESPACES,
    OVERLAYS,
    PROCESSES,
    PRODUCTION_OVERLAYS,
    REPO_ROOT,
    Manifests,
)


@pytest.fixture(params=MESH_OVERLAYS)
def mesh(request: pytest.FixtureRequest, rendered: dict[str, Manifests]) -> Manifests:
    overlay: str = request.param
    return rendered[overlay]


def sources(policy: dict[str, Any]) -> list[dict[str, Any]]:
    return [f["source"] for rule in policy["spec"].get("rules", []) for f in rule.get("from", [])]


def test_mtls_is_strict_namespace_wide(mesh: Manifests) -> None:
    (peer,) = mesh.of_kind("PeerAuthentication")
    assert "selector" not in peer["spec"]
    assert peer["spec"]["mtls"]["mode"] == "STRICT"


def test_deny_by_default(mesh: Manifests) -> None:
    deny = mesh.get("AuthorizationPolicy", "deny-by-default")
    assert deny["spec"] == {}


def test_one_allow_per_workload(mesh: Manifests) -> None:
    selected = [
        p["spec"]["selector"]["matchLabels"]["app"]
        for p in mesh.of_kind("AuthorizationPolicy")
        if p["spec"]
    ]
    assert sorted(selected) == sorted(PROCESSES)
    for policy in mesh.of_kind("AuthorizationPolicy"):
        assert policy["spec"].get("action", "ALLOW") == "ALLOW"


def test_principals_name_real_service_accounts(mesh: Manifests) -> None:
    ours = {
        f"cluster.local/ns/{NAMESPACES[mesh.overlay]}/sa/{name}"
        for name in mesh.names("ServiceAccount")
    }
    for policy in mesh.of_kind("AuthorizationPolicy"):
        for source in sources(policy):
            unknown = set(source["principals"]) - ours - EXTERNAL_PRINCIPALS
            assert unknown == set(), policy["metadata"]["name"]


def test_external_identities_are_installed_by_the_docs() -> None:
    guide = (REPO_ROOT / "docs" / "deploy.md").read_text(encoding="utf-8")
    for principal in EXTERNAL_PRINCIPALS:
        namespace, account = principal.split("/")[2], principal.split("/")[4]
        assert namespace in guide
        assert account in guide


def test_public_routes_require_a_jwt_from_the_issuer(mesh: Manifests) -> None:
    (authn,) = mesh.of_kind("RequestAuthentication")
    (rule,) = authn["spec"]["jwtRules"]
    assert rule["forwardOriginalToken"] is True  # the processes check the token too
    api_rules = [
        r
        for p in mesh.of_kind("AuthorizationPolicy")
        for r in p["spec"].get("rules", [])
        if any(
            path.startswith("/v1/") for op in r["to"] for path in op["operation"].get("paths", [])
        )
    ]
    assert api_rules
    for api_rule in api_rules:
        for entry in api_rule["from"]:
            principals = entry["source"]["requestPrincipals"]
            assert principals == [f"{rule['issuer']}/*"]


def test_processes_use_the_mesh_keys(mesh: Manifests) -> None:
    (authn,) = mesh.of_kind("RequestAuthentication")
    (rule,) = authn["spec"]["jwtRules"]
    config = mesh.config()
    assert config["CHRONICLE_JWT_JWKS_URL"] == rule["jwksUri"]
    assert config["CHRONICLE_JWT_ISSUER"] == rule["issuer"]
    assert config["CHRONICLE_JWT_AUDIENCE"] in rule["audiences"]
    assert "CHRONICLE_JWT_SECRET" not in config  # one key source: the processes refuse two


def test_identity_provider_is_reachable_through_the_registry(mesh: Manifests) -> None:
    (authn,) = mesh.of_kind("RequestAuthentication")
    (rule,) = authn["spec"]["jwtRules"]
    host = urlsplit(rule["jwksUri"]).hostname
    entries = [e for e in mesh.of_kind("ServiceEntry") if host in e["spec"]["hosts"]]
    assert entries, f"no ServiceEntry for {host}"
    assert {p["number"] for e in entries for p in e["spec"]["ports"]} == {443}


def test_sidecar_egress_is_registry_only(mesh: Manifests) -> None:
    (sidecar,) = mesh.of_kind("Sidecar")
    assert "workloadSelector" not in sidecar["spec"]
    assert sidecar["spec"]["outboundTrafficPolicy"]["mode"] == "REGISTRY_ONLY"
    hosts = {h for e in sidecar["spec"]["egress"] for h in e["hosts"]}
    assert "*/*" not in hosts


def test_namespace_injects_sidecars(mesh: Manifests) -> None:
    (namespace,) = mesh.of_kind("Namespace")
    assert namespace["metadata"]["labels"]["istio-injection"] == "enabled"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_auth_is_disabled_only_in_dev(rendered: dict[str, Manifests], overlay: str) -> None:
    disabled = rendered[overlay].config().get("CHRONICLE_AUTH") == "disabled"
    assert disabled is (overlay == "dev")
    if overlay in PRODUCTION_OVERLAYS:
        assert rendered[overlay].config()["CHRONICLE_JWT_JWKS_URL"].startswith("https://")
