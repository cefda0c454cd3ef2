"""Every pod Chronicle runs (Deployments, the migrate Job, init containers included) is
locked down: non-root, read-only root filesystem, no privilege escalation, no
capabilities, RuntimeDefault seccomp, bounded resources, its own service account with no
API token, and images pinned by version or digest."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from tests.deploy.manifests import Manifests, images, is_pinned, ref


def containers(template: dict[str, Any]) -> list[dict[str, Any]]:
    spec = template["spec"]
    return [*spec.get("initContainers", []), *spec["containers"]]


def test_pods_run_as_non_root_with_runtime_default_seccomp(manifests: Manifests) -> None:
    for workload, template in manifests.pod_templates():
        context = template["spec"]["securityContext"]
        assert context["runAsNonRoot"] is True, ref(workload)
        assert context["runAsUser"] > 0, ref(workload)
        assert context["seccompProfile"] == {"type": "RuntimeDefault"}, ref(workload)


def test_containers_are_locked_down(manifests: Manifests) -> None:
    for workload, template in manifests.pod_templates():
        for container in containers(template):
            where = f"{ref(workload)}:{container['name']}"
            context = container["securityContext"]
            assert context["allowPrivilegeEscalation"] is False, where
            assert context["readOnlyRootFilesystem"] is True, where
            assert context["runAsNonRoot"] is True, where
            assert context["capabilities"] == {"drop": ["ALL"]}, where


def test_read_only_root_has_a_writable_tmp(manifests: Manifests) -> None:
    for workload, template in manifests.pod_templates():
        volumes = {v["name"]: v for v in template["spec"].get("volumes", [])}
        for container in containers(template):
            mounts = {m["mountPath"]: m["name"] for m in container.get("volumeMounts", [])}
            assert "/tmp" in mounts, f"{ref(workload)}:{container['name']}"
            assert "emptyDir" in volumes[mounts["/tmp"]]


def test_every_container_has_requests_and_limits(manifests: Manifests) -> None:
    for workload, template in manifests.pod_templates():
        for container in containers(template):
            resources = container["resources"]
            for bound in ("requests", "limits"):
                assert set(resources[bound]) >= {"cpu", "memory"}, (
                    f"{ref(workload)}:{container['name']} {bound}"
                )


def test_each_workload_has_its_own_service_account(manifests: Manifests) -> None:
    accounts = manifests.names("ServiceAccount")
    apps_by_account: dict[str, set[str]] = defaultdict(set)
    for workload, template in manifests.pod_templates():
        spec = template["spec"]
        account = spec.get("serviceAccountName", "default")
        assert account in accounts, f"{ref(workload)} uses missing account {account}"
        assert spec["automountServiceAccountToken"] is False, ref(workload)
        apps_by_account[account].add(template["metadata"]["labels"]["app"])
    shared = {account: apps for account, apps in apps_by_account.items() if len(apps) > 1}
    assert shared == {}


def test_images_are_pinned(manifests: Manifests) -> None:
    unpinned = [f"{where}: {image}" for where, image in images(manifests) if not is_pinned(image)]
    assert unpinned == []


def test_pin_check_rejects_latest_and_untagged() -> None:
    assert not is_pinned("chronicle")
    assert not is_pinned("chronicle:latest")
    assert not is_pinned("registry.example.com:5000/chronicle")
    assert is_pinned("registry.example.com:5000/chronicle:0.1.0")
    assert is_pinned("chronicle@sha256:" + "0" * 64)


def test_production_pulls_chronicle_from_a_registry(rendered: dict[str, Manifests]) -> None:
    for overlay in ("prod", "canary"):
        for where, image in images(rendered[overlay]):
            if image.split("@")[0].rsplit(":", 1)[0].endswith("chronicle"):
                assert "/" in image, f"{overlay} {where} runs a local build: {image}"
