"""deploy/monitoring: the PrometheusRule and the data services' monitors validate against
their pinned CRDs; the kustomization renders; every metric an alert or the Grafana
dashboard queries is one the code exports; every alert has its section in
docs/operations.md."""

from __future__ import annotations

import json
import re
import subprocess
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry

from commands.service.metrics import WriteSideMetrics
from eventstore.metrics import StoreMetrics
from eventstore.probe import LogProbe
from eventstore.relay.metrics import RelayMetrics
from eventstore.web import HttpMetrics
from projections.metrics import ProjectorMetrics
from tests.deploy.manifests import DEPLOY, REPO_ROOT
from tests.deploy.test_crd_schemas import Schemas, crd_errors
from ws_bridge.metrics import BridgeMetrics

MONITORING = DEPLOY / "monitoring"
MANIFESTS = ("prometheus-rule.yaml", "data-service-monitors.yaml")
DASHBOARD = MONITORING / "chronicle-dashboard.json"
OPERATIONS = REPO_ROOT / "docs" / "operations.md"
# Names a PromQL expression uses that are not metrics: functions, keywords, labels.
_METRIC = re.compile(r"\b((?:chronicle|bridge|http)_[a-z_]+)\b")


def _docs() -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    for name in MANIFESTS:
        docs.extend(d for d in yaml.safe_load_all((MONITORING / name).read_text()) if d)
    return docs


def _rules() -> list[dict[str, Any]]:
    rule = next(d for d in _docs() if d["kind"] == "PrometheusRule")
    return [r for group in rule["spec"]["groups"] for r in group["rules"]]


def _dashboard_exprs() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]


def exported_metric_names() -> set[str]:
    """Every sample name the processes can expose (counters' ``_total``, histograms'
    ``_bucket``/``_sum``/``_count``), from the metric classes themselves."""
    registry = CollectorRegistry()
    for make in (RelayMetrics, ProjectorMetrics, BridgeMetrics, WriteSideMetrics):
        make(registry)
    StoreMetrics("sqlite", registry)
    LogProbe(None, {}, registry)  # type: ignore[arg-type]  # the store is not used here
    HttpMetrics(None, registry)  # type: ignore[arg-type]  # nor the app
    names: set[str] = set()
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count")}
    for family in registry.collect():
        names.update(family.name + s for s in suffixes.get(family.type, ("",)))
    return names


def test_manifests_validate_against_their_crds(crd_schemas: Schemas) -> None:
    docs = _docs()
    assert {d["kind"] for d in docs} == {"PrometheusRule", "PodMonitor", "ServiceMonitor"}
    errors = [error for doc in docs for error in crd_errors(doc, crd_schemas)]
    assert errors == [], "\n".join(errors)


def test_the_rule_covers_the_pipeline() -> None:
    alerts = {rule["alert"] for rule in _rules()}
    required = {
        "ChronicleRelayLagging",
        "ChronicleProjectionHalted",
        "ChronicleProjectionLagging",
        "ChronicleEventsParked",
        "ChronicleHigh5xxRate",
        "ChronicleOrderingStall",
        "ChronicleTransferManagerNoLeader",
        "ChronicleTransferManagerSplitLead",
        "ChronicleTransferManagerStuck",
    }
    assert required <= alerts
    for rule in _rules():
        assert rule["labels"]["severity"] in {"warning", "critical"}, rule["alert"]
        assert rule["annotations"]["summary"], rule["alert"]


@pytest.mark.parametrize("source", ["alerts", "dashboard"])
def test_queries_use_only_exported_metrics(source: str) -> None:
    exprs = [r["expr"] for r in _rules()] if source == "alerts" else _dashboard_exprs()
    assert exprs
    exported = exported_metric_names()
    used = {name for expr in exprs for name in _METRIC.findall(expr)}
    assert used, "no metric found in the expressions"
    assert used - exported == set()


@pytest.mark.parametrize("source", ["alerts", "dashboard"])
def test_queries_are_balanced(source: str) -> None:
    exprs = [r["expr"] for r in _rules()] if source == "alerts" else _dashboard_exprs()
    for expr in exprs:
        for opening, closing in ("()", "{}", "[]"):
            assert expr.count(opening) == expr.count(closing), expr


def test_dashboard_panels_have_unique_ids_and_a_datasource() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    assert dashboard["uid"] == "chronicle-pipeline"
    for panel in dashboard["panels"]:
        if panel["type"] != "row":
            assert panel["targets"], panel["title"]
            assert panel["datasource"]["type"] == "prometheus"


def test_every_alert_has_a_runbook_section() -> None:
    headings = {
        line.lstrip("#").strip()
        for line in OPERATIONS.read_text().splitlines()
        if line.startswith("### ")
    }
    missing = {rule["alert"] for rule in _rules()} - headings
    assert missing == set()


def test_kustomization_renders(renderer: list[str]) -> None:
    done = subprocess.run(
        [*renderer, str(MONITORING)], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    kinds = [d["kind"] for d in yaml.safe_load_all(done.stdout) if d]
    assert sorted(kinds) == ["ConfigMap", "PodMonitor", "PrometheusRule", "ServiceMonitor"]
