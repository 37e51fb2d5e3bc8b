"""Fixtures of the manifests tier: every kustomize overlay and Helm values file, rendered once."""

from __future__ import annotations

from pathlib import Path

import pytest

from manifests import helpers as h


@pytest.fixture(scope="session")
def kube_tools() -> None:
    h.ensure_tools()


@pytest.fixture(scope="session")
def kustomize_tree(kube_tools: None, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return h.prepare_kustomize_tree(tmp_path_factory.mktemp("kustomize"))


@pytest.fixture(scope="session")
def renders(kustomize_tree: Path) -> dict[str, h.Render]:
    """Every render the tier checks: the base, each overlay, the chart with each values file."""
    out: dict[str, h.Render] = {}
    base = h.Render("kustomize/base", h.render_kustomize(kustomize_tree / "base"))
    out[base.name] = base
    for overlay in h.overlays():
        objs = h.render_kustomize(kustomize_tree / "overlays" / overlay)
        out[f"kustomize/{overlay}"] = h.Render(f"kustomize/{overlay}", objs)
    out["helm/default"] = h.Render("helm/default", h.render_helm())
    for values in h.helm_values_files():
        out[f"helm/{values}"] = h.Render(f"helm/{values}", h.render_helm([values]))
    # The operator's CRD, RBAC and Deployment (deploy/operator), held to the same checks.
    out["operator"] = h.Render("operator", h.render_kustomize(h.REPO / "deploy" / "operator"))
    return out


@pytest.fixture(scope="session")
def rendered_dir(renders: dict[str, h.Render], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Each render as a YAML file, for the command-line checkers."""
    directory = tmp_path_factory.mktemp("rendered")
    for render in renders.values():
        h.write_render(render, directory)
    return directory
