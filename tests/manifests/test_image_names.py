"""Which images each render pulls: what lab 1 builds and pushes, never a bare name.

The kustomize base keeps bare template names (`roar-web:0.2.0`) that every overlay rewrites with
`images:`; everything a learner deploys as it is (the workshop overlays, the chart's defaults and
its example values, the operator) pulls `localhost:5000/<image>:<app version>`.
"""

from __future__ import annotations

import pytest

from manifests import helpers as h
from roar.kube import names

WORKSHOP_IMAGES = {"roar-web", "roar-db", "roar-operator"}
#: Renders that name their own registry instead of the workshop's.
OWN_REGISTRY = {"kustomize/base", "kustomize/prod", "helm/prod-values.yaml"}


def _images(render: h.Render) -> set[str]:
    return {c["image"] for _, pod in h.pod_templates(render.objects) for c in h.containers(pod)}


@pytest.mark.parametrize("name", [n for n in h.render_names() if n not in OWN_REGISTRY])
def test_workshop_renders_pull_from_the_workshop_registry(
    renders: dict[str, h.Render], name: str
) -> None:
    images = _images(renders[name])
    assert images
    for image in images:
        repository, _, tag = image.rpartition(":")
        registry, _, short = repository.partition("/")
        assert (registry, tag) == (names.WORKSHOP_REGISTRY, names.DEFAULT_TAG), image
        assert short in WORKSHOP_IMAGES, image


@pytest.mark.parametrize("overlay", h.overlays())
def test_every_overlay_rewrites_the_bare_base_names(
    renders: dict[str, h.Render], overlay: str
) -> None:
    """A bare `roar-db` would be pulled from Docker Hub, where no such image exists."""
    for image in _images(renders[f"kustomize/{overlay}"]):
        host = image.split("/", 1)[0]
        assert "/" in image and ("." in host or ":" in host or host == "localhost"), image
