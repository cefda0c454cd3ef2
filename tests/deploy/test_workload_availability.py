"""Availability guard rails of every Deployment: startup, liveness (/healthz, which
needs neither PostgreSQL nor RabbitMQ) and readiness (/readyz) probes, a
PodDisruptionBudget, topology spread, HPAs on the three HTTP tiers with a slow bridge
scale-down, two relays, and a bridge that drains its sockets before it is killed."""

from __future__ import annotations

from tests.deploy.manifests import Manifests, main_container, ref, selects

AUTOSCALED = {"commands", "queries", "bridge"}


def test_probes(manifests: Manifests) -> None:
    for deployment in manifests.of_kind("Deployment"):
        container = main_container(deployment)
        assert container["startupProbe"]["httpGet"]["path"] == "/healthz", ref(deployment)
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz", ref(deployment)
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz", ref(deployment)


def test_every_deployment_has_a_disruption_budget(manifests: Manifests) -> None:
    budgets = manifests.of_kind("PodDisruptionBudget")
    for deployment in manifests.of_kind("Deployment"):
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        covering = [b for b in budgets if selects(b["spec"]["selector"]["matchLabels"], labels)]
        assert len(covering) == 1, ref(deployment)


def test_pods_spread_over_zones_and_nodes(manifests: Manifests) -> None:
    for deployment in manifests.of_kind("Deployment"):
        template = deployment["spec"]["template"]
        constraints = template["spec"]["topologySpreadConstraints"]
        keys = {c["topologyKey"] for c in constraints}
        assert keys == {"topology.kubernetes.io/zone", "kubernetes.io/hostname"}, ref(deployment)
        for constraint in constraints:
            selector = constraint["labelSelector"]["matchLabels"]
            assert selects(selector, template["metadata"]["labels"]), ref(deployment)


def test_http_tiers_autoscale(manifests: Manifests) -> None:
    targets = {
        h["spec"]["scaleTargetRef"]["name"] for h in manifests.of_kind("HorizontalPodAutoscaler")
    }
    assert targets == AUTOSCALED
    assert targets <= manifests.names("Deployment")
    for name in AUTOSCALED:
        assert "replicas" not in manifests.get("Deployment", name)["spec"], name


def test_bridge_scales_down_slowly(manifests: Manifests) -> None:
    scale_down = manifests.get("HorizontalPodAutoscaler", "bridge")["spec"]["behavior"]["scaleDown"]
    assert scale_down["stabilizationWindowSeconds"] >= 600
    for policy in scale_down["policies"]:
        assert policy["type"] == "Pods"
        assert policy["value"] == 1
        assert policy["periodSeconds"] >= 300


def test_relay_runs_two_replicas_in_production(rendered: dict[str, Manifests]) -> None:
    for overlay in ("prod", "canary", "fault-drill"):
        assert rendered[overlay].get("Deployment", "relay")["spec"]["replicas"] == 2


def test_projector_never_overlaps_itself(manifests: Manifests) -> None:
    spec = manifests.get("Deployment", "projector")["spec"]
    assert spec["replicas"] == 1
    assert spec["strategy"]["type"] == "Recreate"


def test_bridge_drains_its_sockets(manifests: Manifests) -> None:
    for deployment in manifests.of_kind("Deployment"):
        if deployment["spec"]["template"]["metadata"]["labels"]["app"] != "bridge":
            continue
        pod = deployment["spec"]["template"]["spec"]
        pre_stop = main_container(deployment)["lifecycle"]["preStop"]["sleep"]["seconds"]
        assert pre_stop >= 10
        assert pod["terminationGracePeriodSeconds"] >= pre_stop + 60


def test_every_pod_waits_for_the_schema(manifests: Manifests) -> None:
    for deployment in manifests.of_kind("Deployment"):
        (init,) = deployment["spec"]["template"]["spec"]["initContainers"]
        assert init["command"] == ["chronicle", "migrate"], ref(deployment)
        assert init["image"] == main_container(deployment)["image"], ref(deployment)
