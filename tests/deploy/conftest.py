"""Fixtures of the deploy tests: every overlay rendered once per session, and the pinned
CRD schemas. A missing tool or CRD directory skips with the reason; under ``CI=true`` it
fails instead, so CI never passes by skipping."""

from __future__ import annotations

from typing import Any

import pytest

from tests.deploy.manifests import (
    OVERLAYS,
    Manifests,
    RenderError,
    crds_dir,
    find_renderer,
    in_ci,
    load_crd_schemas,
    render,
)


def _unavailable(reason: str) -> None:
    if in_ci():
        pytest.fail(f"{reason} (required under CI=true)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def renderer() -> list[str]:
    found = find_renderer()
    if found is None:
        _unavailable("neither kubectl nor kustomize found; run `make kustomize`")
    assert found is not None
    return found


@pytest.fixture(scope="session")
def rendered(renderer: list[str]) -> dict[str, Manifests]:
    """Every overlay's render; an overlay that does not render is missing (and the
    rendering test reports why)."""
    out: dict[str, Manifests] = {}
    for overlay in OVERLAYS:
        try:
            out[overlay] = render(renderer, overlay)
        except RenderError:
            continue
    return out


@pytest.fixture(params=OVERLAYS)
def manifests(request: pytest.FixtureRequest, rendered: dict[str, Manifests]) -> Manifests:
    """One overlay's render (the test runs once per overlay)."""
    overlay: str = request.param
    if overlay not in rendered:
        pytest.fail(f"overlay {overlay} does not render (see test_kustomize_render)")
    return rendered[overlay]


@pytest.fixture(scope="session")
def crd_schemas() -> dict[tuple[str, str, str], dict[str, Any]]:
    directory = crds_dir()
    if directory is None:
        _unavailable("CRD directory not found: set CHRONICLE_CRDS_DIR or provide ../shared/crds")
    assert directory is not None
    return load_crd_schemas(directory)
