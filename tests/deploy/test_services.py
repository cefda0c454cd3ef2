"""Every Service selects the pods of a Deployment (a Service that selects nothing is a
silent outage), and every Deployment's pods are behind exactly one Service."""

from __future__ import annotations

from tests.deploy.manifests import Manifests, ref, selects


def pod_labels(manifests: Manifests) -> list[dict[str, str]]:
    return [d["spec"]["template"]["metadata"]["labels"] for d in manifests.of_kind("Deployment")]


def test_every_service_selects_pods(manifests: Manifests) -> None:
    labels = pod_labels(manifests)
    for service in manifests.of_kind("Service"):
        selector = service["spec"]["selector"]
        assert selector, ref(service)
        assert any(selects(selector, pod) for pod in labels), ref(service)


def test_every_deployment_is_behind_one_service(manifests: Manifests) -> None:
    services = manifests.of_kind("Service")
    for deployment in manifests.of_kind("Deployment"):
        pod = deployment["spec"]["template"]["metadata"]["labels"]
        matching = [s for s in services if selects(s["spec"]["selector"], pod)]
        assert len(matching) == 1, ref(deployment)


def test_deployment_selectors_do_not_overlap(manifests: Manifests) -> None:
    deployments = manifests.of_kind("Deployment")
    for deployment in deployments:
        selector = deployment["spec"]["selector"]["matchLabels"]
        owners = [
            d for d in deployments if selects(selector, d["spec"]["template"]["metadata"]["labels"])
        ]
        assert owners == [deployment], ref(deployment)
