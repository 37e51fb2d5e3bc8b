"""tools/release/set-image, the GitOps release step, run as a pipeline would: on a git repository
holding a copy of deploy/kustomize, it bumps roar-web's tag in the dev overlay and commits.

What a reviewer of that commit (and Flux, and Argo CD) must see: the overlay's YAML differs in
exactly the image field, Flux's image-policy markers are still on their lines, the render
differs only in roar-web's image, and one commit names the image and the tag. A bad tag is
refused, naming it, and changes nothing."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from manifests import helpers as h

SET_IMAGE = h.REPO / "tools" / "release" / "set-image"
DEV = Path("deploy/kustomize/overlays/dev")
OLD_IMAGE, NEW_IMAGE = "localhost:5000/roar-web:0.2.0", "localhost:5000/roar-web:0.3.0"
MARKER = '# {"$imagepolicy": "flux-system:roar-web:tag"}'
GIT_ENV = {
    "GIT_AUTHOR_NAME": "release", "GIT_AUTHOR_EMAIL": "release@example.com",
    "GIT_COMMITTER_NAME": "release", "GIT_COMMITTER_EMAIL": "release@example.com",
    "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1",
}  # fmt: skip


def git(repo: Path, *args: str) -> str:
    env = dict(os.environ, **GIT_ENV)
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True,
                          text=True, env=env).stdout  # fmt: skip


def set_image(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The script as a pipeline runs it: its own shebang, from the repository's root."""
    env = dict(os.environ, **GIT_ENV)
    return subprocess.run([str(SET_IMAGE), *args], cwd=repo, capture_output=True, text=True,
                          env=env, timeout=300)  # fmt: skip


@dataclass(frozen=True)
class Bump:
    repo: Path
    before: str
    after: str
    head_before: str
    result: subprocess.CompletedProcess[str]


@pytest.fixture(scope="module")
def bump(kube_tools: None, tmp_path_factory: pytest.TempPathFactory) -> Bump:
    """A git repository with deploy/kustomize (credential files made from their examples), and
    `set-image deploy/kustomize/overlays/dev roar-web:0.3.0` run in it once."""
    repo = tmp_path_factory.mktemp("release-repo")
    h.prepare_kustomize_tree(repo / "deploy")
    git(repo, "init", "--quiet", "--initial-branch=main")
    git(repo, "add", "--all")
    git(repo, "commit", "--quiet", "--message=the overlays as released")
    head = git(repo, "rev-parse", "HEAD").strip()
    before = (repo / DEV / "kustomization.yaml").read_text()
    result = set_image(repo, str(DEV), "roar-web:0.3.0")
    assert result.returncode == 0, result.stderr
    return Bump(repo, before, (repo / DEV / "kustomization.yaml").read_text(), head, result)


def _images(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {image["name"]: image for image in doc["images"]}


def test_only_the_tag_changes(bump: Bump) -> None:
    before, after = yaml.safe_load(bump.before), yaml.safe_load(bump.after)
    assert _images(before)["roar-web"]["newTag"] != "0.3.0"
    expected = yaml.safe_load(bump.before)
    _images(expected)["roar-web"]["newTag"] = "0.3.0"
    assert after == expected
    # Layout and comments stay: one line differs, the tag's.
    changed = [(a, b) for a, b in zip(bump.before.splitlines(), bump.after.splitlines(),
                                      strict=True) if a != b]  # fmt: skip
    assert changed == [(f"    newTag: 0.2.0 {MARKER}", f"    newTag: 0.3.0 {MARKER}")]


def test_the_flux_markers_survive(bump: Bump) -> None:
    """Flux's image automation still finds its setter on roar-web's newTag line."""
    marked = [line.strip() for line in bump.after.splitlines() if "$imagepolicy" in line]
    assert marked == [f"newTag: 0.3.0 {MARKER}"]


def test_the_render_changes_only_roar_webs_image(bump: Bump, tmp_path: Path) -> None:
    """What Flux or Argo CD applies: the web container and its migrate init container get the
    new image; every other field of every object is as before."""
    old_tree = tmp_path / "before"
    h.prepare_kustomize_tree(old_tree)
    kustomization = old_tree / "kustomize" / "overlays" / "dev" / "kustomization.yaml"
    kustomization.write_text(bump.before)
    old = h.render_kustomize(kustomization.parent)
    new = h.render_kustomize(bump.repo / DEV)

    def retag(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: retag(v) for k, v in value.items()}
        if isinstance(value, list):
            return [retag(v) for v in value]
        return (
            "localhost:5000/roar-web:0.3.0" if value == "localhost:5000/roar-web:0.2.0" else value
        )

    assert new == retag(old)
    web = next(o for o in new if o["kind"] == "Deployment")["spec"]["template"]["spec"]
    assert {c["image"] for c in h.containers({"spec": web})} == {NEW_IMAGE}


def test_one_commit_names_the_image_and_the_tag(bump: Bump) -> None:
    assert git(bump.repo, "rev-parse", "HEAD~1").strip() == bump.head_before
    subject = git(bump.repo, "log", "-1", "--format=%s").strip()
    assert subject == f"release: roar-web 0.3.0 in {DEV}"
    files = git(bump.repo, "show", "--name-only", "--format=", "HEAD").split()
    assert files == [str(DEV / "kustomization.yaml")]
    assert git(bump.repo, "status", "--porcelain") == ""
    assert f"committed {git(bump.repo, 'rev-parse', '--short', 'HEAD').strip()}" in (
        bump.result.stdout
    )


def test_a_bad_tag_is_refused_naming_it(bump: Bump) -> None:
    head = git(bump.repo, "rev-parse", "HEAD")
    refused = set_image(bump.repo, str(DEV), "roar-web:v1 2")
    assert refused.returncode == 2
    assert "tag 'v1 2' of image 'roar-web' is not a valid image tag" in refused.stderr
    assert (bump.repo / DEV / "kustomization.yaml").read_text() == bump.after
    assert git(bump.repo, "rev-parse", "HEAD") == head
