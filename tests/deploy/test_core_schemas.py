"""Every resource of a Kubernetes API group passes ``kubernetes-validate --strict`` for
Kubernetes 1.32: unknown fields are errors, and so is a kind the schemas do not know
(custom kinds are checked against their CRDs in test_crd_schemas)."""

from __future__ import annotations

from typing import Any

import kubernetes_validate
import pytest

from tests.deploy.manifests import KUBERNETES_VERSION, Manifests, group_of, is_core_group, ref


def core_errors(doc: dict[str, Any]) -> list[str]:
    try:
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError as exc:
        path = ".".join(str(p) for p in exc.path)
        return [f"{ref(doc)}: {path}: {exc.message}"]
    except kubernetes_validate.SchemaNotFoundError as exc:
        return [f"{ref(doc)}: unknown kind: {exc.message}"]
    return []


def test_core_kinds_validate_strictly(manifests: Manifests) -> None:
    errors = [
        error
        for doc in manifests.docs
        if is_core_group(group_of(doc))
        for error in core_errors(doc)
    ]
    assert errors == [], "\n".join(errors)


def test_strict_mode_rejects_an_unknown_field() -> None:
    doc = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "typo"},
        "spec": {"selectr": {"app": "x"}},
    }
    assert core_errors(doc) != []


@pytest.mark.parametrize(
    ("api_version", "kind"), [("apps/v1", "Deploymnet"), ("policy/v1beta1", "PodSecurityPolicy")]
)
def test_an_unknown_core_kind_is_an_error(api_version: str, kind: str) -> None:
    doc = {"apiVersion": api_version, "kind": kind, "metadata": {"name": "x"}}
    assert core_errors(doc) != []
