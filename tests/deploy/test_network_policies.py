"""NetworkPolicies: default deny in both directions, DNS for everyone, and for each
workload exactly the paths it needs: its HTTP port in, PostgreSQL out for every process,
AMQP out only for the broker users, and the data services accepting those clients. The
policies are evaluated the way the API defines them (selectors, peers, ports)."""

from __future__ import annotations

from typing import Any

from tests.deploy.manifests import PROCESSES, Manifests

Labels = dict[str, str]
BROKER_USERS = {"relay", "projector", "bridge", "migrate"}


def matches(selector: dict[str, Any], labels: Labels) -> bool:
    """Kubernetes label-selector semantics; an empty selector matches everything."""
    if any(labels.get(k) != v for k, v in selector.get("matchLabels", {}).items()):
        return False
    for expr in selector.get("matchExpressions", []):
        present, value = expr["key"] in labels, labels.get(expr["key"])
        verdict = {
            "In": present and value in expr.get("values", []),
            "NotIn": not present or value not in expr.get("values", []),
            "Exists": present,
            "DoesNotExist": not present,
        }[expr["operator"]]
        if not verdict:
            return False
    return True


def allows(manifests: Manifests, direction: str, pod: Labels, peer: Labels, port: int) -> bool:
    """Whether some policy selecting ``pod`` lets traffic with same-namespace ``peer``
    through on TCP ``port`` (direction "ingress": peer -> pod, "egress": pod -> peer)."""
    peer_key = "from" if direction == "ingress" else "to"
    for policy in manifests.of_kind("NetworkPolicy"):
        spec = policy["spec"]
        if not matches(spec["podSelector"], pod):
            continue
        for rule in spec.get(direction, []):
            peers = rule.get(peer_key)
            peer_ok = peers is None or any(
                "namespaceSelector" not in p
                and "ipBlock" not in p
                and matches(p.get("podSelector", {}), peer)
                for p in peers
            )
            ports = rule.get("ports")
            port_ok = ports is None or any(p.get("port") == port for p in ports)
            if peer_ok and port_ok:
                return True
    return False


def workloads(manifests: Manifests) -> dict[str, Labels]:
    return {
        template["metadata"]["labels"]["app"]: template["metadata"]["labels"]
        for _, template in manifests.pod_templates()
    }


def data_pods(manifests: Manifests) -> tuple[Labels, Labels]:
    (pg,) = manifests.of_kind("Cluster")
    (mq,) = manifests.of_kind("RabbitmqCluster")
    return (
        {"cnpg.io/cluster": pg["metadata"]["name"]},
        {"app.kubernetes.io/name": mq["metadata"]["name"]},
    )


def test_default_deny_and_dns(manifests: Manifests) -> None:
    deny = manifests.get("NetworkPolicy", "default-deny")["spec"]
    assert deny == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
    dns = manifests.get("NetworkPolicy", "allow-dns")["spec"]
    assert dns["podSelector"] == {}
    (rule,) = dns["egress"]
    assert {(p["protocol"], p["port"]) for p in rule["ports"]} == {("UDP", 53), ("TCP", 53)}


def test_every_pod_is_covered_by_a_policy_of_its_own(manifests: Manifests) -> None:
    pods = [*workloads(manifests).values(), *data_pods(manifests)]
    for pod in pods:
        own = [
            p
            for p in manifests.of_kind("NetworkPolicy")
            if p["spec"]["podSelector"] and matches(p["spec"]["podSelector"], pod)
        ]
        assert own, pod


def test_processes_accept_their_http_port(manifests: Manifests) -> None:
    apps = workloads(manifests)
    for name, process in PROCESSES.items():
        # Sources outside the namespace (gateway, Prometheus) are namespace peers: look
        # at the port alone by asking for a rule on that port at all.
        rules = [
            rule
            for policy in manifests.of_kind("NetworkPolicy")
            if policy["spec"]["podSelector"] and matches(policy["spec"]["podSelector"], apps[name])
            for rule in policy["spec"].get("ingress", [])
        ]
        assert any(p["port"] == process.port for r in rules for p in r["ports"]), name


def test_every_process_reaches_postgresql(manifests: Manifests) -> None:
    postgres, _ = data_pods(manifests)
    for name, pod in workloads(manifests).items():
        assert allows(manifests, "egress", pod, postgres, 5432), name
        assert allows(manifests, "ingress", postgres, pod, 5432), name


def test_only_broker_users_reach_rabbitmq(manifests: Manifests) -> None:
    _, rabbitmq = data_pods(manifests)
    for name, pod in workloads(manifests).items():
        expected = name in BROKER_USERS
        assert allows(manifests, "egress", pod, rabbitmq, 5672) is expected, name
        assert allows(manifests, "ingress", rabbitmq, pod, 5672) is expected, name


def test_processes_do_not_talk_to_each_other(manifests: Manifests) -> None:
    apps = workloads(manifests)
    for source, source_labels in apps.items():
        for target, process in PROCESSES.items():
            if source != target:
                egress = allows(manifests, "egress", source_labels, apps[target], process.port)
                assert not egress, f"{source} -> {target}"


def test_data_services_replicate_among_themselves(manifests: Manifests) -> None:
    postgres, rabbitmq = data_pods(manifests)
    assert allows(manifests, "ingress", postgres, postgres, 5432)
    assert allows(manifests, "egress", postgres, postgres, 5432)
    for port in (4369, 25672):
        assert allows(manifests, "ingress", rabbitmq, rabbitmq, port)
        assert allows(manifests, "egress", rabbitmq, rabbitmq, port)
