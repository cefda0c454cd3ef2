"""PostgreSQL (CloudNativePG) and RabbitMQ as the processes see them: the write side and
the projector use the primary (-rw), queries the replicas (-ro): the CQRS split at the
SQL level. Credentials come only from the operators' secrets, composed into URLs by
$(VAR) references that Kubernetes can resolve; no secret value is committed."""

from __future__ import annotations

import re
from typing import Any

from tests.deploy.manifests import PRODUCTION_OVERLAYS, Manifests, env_of, main_container, ref

PRIMARY_USERS = {"commands", "relay", "projector", "bridge"}
BROKER_USERS = {"relay", "projector", "bridge", "migrate"}
REFERENCE = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)")


def names(manifests: Manifests) -> tuple[str, str]:
    (pg,) = manifests.of_kind("Cluster")
    (mq,) = manifests.of_kind("RabbitmqCluster")
    return pg["metadata"]["name"], mq["metadata"]["name"]


def app_container(manifests: Manifests, app: str) -> dict[str, Any]:
    if app == "migrate":
        (container,) = manifests.get("Job", "migrate")["spec"]["template"]["spec"]["containers"]
        return container
    return main_container(manifests.get("Deployment", app))


def test_write_side_uses_the_primary(manifests: Manifests) -> None:
    pg, _ = names(manifests)
    primary_uri = {"secretKeyRef": {"name": f"{pg}-app", "key": "uri"}}
    for app in [*PRIMARY_USERS, "migrate"]:
        assert env_of(app_container(manifests, app))["CHRONICLE_EVENTSTORE_URL"] == primary_uri
    projector = env_of(app_container(manifests, "projector"))
    assert projector["CHRONICLE_READ_DATABASE_URL"] == primary_uri


def test_queries_read_from_the_replicas(manifests: Manifests) -> None:
    pg, _ = names(manifests)
    instances = manifests.get("Cluster", pg)["spec"]["instances"]
    env = env_of(app_container(manifests, "queries"))
    # With one instance there is no replica; -r reaches any instance.
    assert env["PG_READ_HOST"] == (f"{pg}-ro" if instances > 1 else f"{pg}-r")
    for key in ("CHRONICLE_EVENTSTORE_URL", "CHRONICLE_READ_DATABASE_URL"):
        assert "@$(PG_READ_HOST):5432/" in env[key], key
    assert env["PG_PASSWORD"] == {"secretKeyRef": {"name": f"{pg}-app", "key": "password"}}


def test_broker_users_and_only_they_get_the_broker(manifests: Manifests) -> None:
    _, mq = names(manifests)
    for app in ("commands", "queries", "relay", "projector", "bridge", "migrate"):
        env = env_of(app_container(manifests, app))
        if app not in BROKER_USERS:
            assert "CHRONICLE_BROKER_URL" not in env, app
            continue
        assert env["CHRONICLE_BROKER_URL"].startswith("amqp://$(MQ_USER):$(MQ_PASSWORD)@")
        assert f"@{mq}:5672/" in env["CHRONICLE_BROKER_URL"], app
        secret = {"secretKeyRef": {"name": f"{mq}-default-user", "key": "password"}}
        assert env["MQ_PASSWORD"] == secret, app


def test_references_resolve(manifests: Manifests) -> None:
    """$(VAR) expands only if VAR is defined earlier in the same container's env."""
    for workload, template in manifests.pod_templates():
        spec = template["spec"]
        for container in [*spec.get("initContainers", []), *spec["containers"]]:
            defined: set[str] = set()
            for entry in container.get("env", []):
                for name in REFERENCE.findall(entry.get("value", "")):
                    assert name in defined, f"{ref(workload)}:{container['name']} {name}"
                defined.add(entry["name"])


def test_no_secret_values_are_committed(manifests: Manifests) -> None:
    assert manifests.of_kind("Secret") == []
    for workload, template in manifests.pod_templates():
        spec = template["spec"]
        for container in [*spec.get("initContainers", []), *spec["containers"]]:
            for entry in container.get("env", []):
                value = entry.get("value", "")
                userinfo = value.partition("://")[2].partition("@")[0] if "@" in value else ""
                assert REFERENCE.sub("", userinfo).strip(":") == "", ref(workload)


def test_production_data_services_are_replicated(rendered: dict[str, Manifests]) -> None:
    for overlay in PRODUCTION_OVERLAYS:
        pg, mq = names(rendered[overlay])
        cluster = rendered[overlay].get("Cluster", pg)["spec"]
        assert cluster["instances"] == 3
        assert cluster["postgresql"]["synchronous"]["dataDurability"] == "required"
        assert rendered[overlay].get("RabbitmqCluster", mq)["spec"]["replicas"] == 3


def test_data_services_and_migrations_stay_out_of_the_mesh(manifests: Manifests) -> None:
    pg, mq = names(manifests)
    off = {"sidecar.istio.io/inject": "false"}
    pg_meta = manifests.get("Cluster", pg)["spec"]["inheritedMetadata"]
    mq_override = manifests.get("RabbitmqCluster", mq)["spec"]["override"]
    mq_meta = mq_override["statefulSet"]["spec"]["template"]["metadata"]
    job_meta = manifests.get("Job", "migrate")["spec"]["template"]["metadata"]
    for meta in (pg_meta, mq_meta, job_meta):
        assert off.items() <= meta["labels"].items()
        assert off.items() <= meta["annotations"].items()
