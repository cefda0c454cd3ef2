"""Every custom resource validates against the openAPIV3Schema of its pinned CRD (the
shared crds directory), closed like the API server's strict field validation, and every
error is reported at once. A custom kind with no pinned CRD is an error."""

from __future__ import annotations

from typing import Any

from jsonschema import Draft7Validator

from tests.deploy.manifests import Manifests, closed, group_of, is_core_group, ref

Schemas = dict[tuple[str, str, str], dict[str, Any]]


def crd_errors(doc: dict[str, Any], schemas: Schemas) -> list[str]:
    group, _, version = doc["apiVersion"].rpartition("/")
    schema = schemas.get((group, version, doc["kind"]))
    if schema is None:
        return [f"{ref(doc)}: no pinned CRD serves {doc['apiVersion']} {doc['kind']}"]
    validator = Draft7Validator(closed(schema))
    return [
        f"{ref(doc)}: {'.'.join(str(p) for p in error.absolute_path)}: {error.message}"
        for error in validator.iter_errors(doc)
    ]


def test_custom_resources_validate(manifests: Manifests, crd_schemas: Schemas) -> None:
    errors = [
        error
        for doc in manifests.docs
        if not is_core_group(group_of(doc))
        for error in crd_errors(doc, crd_schemas)
    ]
    assert errors == [], "\n".join(errors)


def test_closed_schemas_reject_unknown_fields(crd_schemas: Schemas) -> None:
    doc = {
        "apiVersion": "networking.istio.io/v1",
        "kind": "VirtualService",
        "metadata": {"name": "typo"},
        "spec": {"hosts": ["a"], "htpp": []},
    }
    assert any("htpp" in e for e in crd_errors(doc, crd_schemas))


def test_every_error_is_reported(crd_schemas: Schemas) -> None:
    doc = {
        "apiVersion": "postgresql.cnpg.io/v1",
        "kind": "Cluster",
        "metadata": {"name": "two-errors"},
        "spec": {"instances": "three", "storage": {"sise": "1Gi"}},
    }
    assert len(crd_errors(doc, crd_schemas)) == 2


def test_a_custom_kind_without_crd_is_an_error(crd_schemas: Schemas) -> None:
    doc = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "x"}}
    assert crd_errors(doc, crd_schemas) != []
