"""Every overlay (dev, prod, canary, fault-drill) renders with kustomize into uniquely
named resources, all in the overlay's own namespace."""

from __future__ import annotations

from collections import Counter

import pytest

from tests.deploy.manifests import NAMESPACES, OVERLAYS, Manifests, ref, render


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_renders(renderer: list[str], overlay: str) -> None:
    manifests = render(renderer, overlay)
    kinds = {d["kind"] for d in manifests.docs}
    assert {"Deployment", "Service", "Job", "Cluster", "RabbitmqCluster"} <= kinds


def test_resources_are_unique(manifests: Manifests) -> None:
    counts = Counter(ref(d) for d in manifests.docs)
    assert [name for name, n in counts.items() if n > 1] == []


def test_everything_lives_in_the_overlay_namespace(manifests: Manifests) -> None:
    expected = NAMESPACES[manifests.overlay]
    (namespace,) = manifests.of_kind("Namespace")
    assert namespace["metadata"]["name"] == expected
    elsewhere = [
        ref(d)
        for d in manifests.docs
        if d["kind"] != "Namespace" and d["metadata"].get("namespace") != expected
    ]
    assert elsewhere == []
