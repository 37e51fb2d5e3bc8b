"""Rendering and loading for the manifests tier: kustomize, Helm and the static checkers.

Every render goes through the real binaries that scripts/setup/kube-tools.sh installs.
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

REPO = Path(__file__).resolve().parents[2]
KUSTOMIZE = REPO / "deploy" / "kustomize"
CHART = REPO / "deploy" / "helm" / "roar"
SKIPS_FILE = REPO / "deploy" / "checkov-skips.yaml"
SETUP = REPO / "scripts" / "setup" / "kube-tools.sh"
CACHE = Path(os.environ.get("ROAR_CACHE_DIR", "/var/cache/roar"))
BIN = CACHE / "bin"
TOOLS = ("helm", "kubectl", "kubernetes-validate", "checkov")

#: Release and namespace of every Helm render; "rel" makes fullname "rel-roar".
RELEASE = "rel"
NAMESPACE = "roar"
#: Kubernetes versions every object is validated against: recent, and an older supported one
#: (also Chart.yaml's kubeVersion floor).
KUBE_VERSIONS = ("1.37.0", "1.33.0")

Obj = dict[str, Any]


def tool(name: str) -> str:
    return str(BIN / name)


def ensure_tools() -> None:
    """Install the pinned tools once (idempotent) when any is missing."""
    if all((BIN / name).exists() for name in TOOLS):
        return
    result = subprocess.run(["bash", str(SETUP)], capture_output=True, text=True, timeout=1200)
    if result.returncode != 0:
        raise RuntimeError(f"{SETUP} failed:\n{result.stderr[-3000:]}")


def run(
    args: list[str], *, check: bool = True, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(args, capture_output=True, text=True, timeout=600, cwd=cwd)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(args)} failed ({result.returncode}):\n{result.stderr}")
    return result


def load_all(text: str) -> list[Obj]:
    return [doc for doc in yaml.safe_load_all(text) if doc]


def prepare_kustomize_tree(target: Path) -> Path:
    """A copy of deploy/kustomize with every gitignored env file made from its .example.

    Tests never read a developer's real credentials, and need no setup step.
    """
    tree = target / "kustomize"
    shutil.copytree(KUSTOMIZE, tree, ignore=shutil.ignore_patterns("*.env"))
    for example in tree.rglob("*.env.example"):
        example.with_suffix("").write_text(example.read_text())
    return tree


def overlays() -> list[str]:
    return sorted(p.parent.name for p in (KUSTOMIZE / "overlays").glob("*/kustomization.yaml"))


def components() -> list[str]:
    return sorted(p.parent.name for p in (KUSTOMIZE / "components").glob("*/kustomization.yaml"))


def helm_values_files() -> list[str]:
    return sorted(p.name for p in (CHART / "ci").glob("*-values.yaml"))


def render_kustomize(directory: Path) -> list[Obj]:
    return load_all(run([tool("kubectl"), "kustomize", str(directory)]).stdout)


def helm_template_args(values: list[str] | None = None, sets: list[str] | None = None) -> list[str]:
    args = [tool("helm"), "template", RELEASE, str(CHART), "--namespace", NAMESPACE]
    for name in values or []:
        args += ["--values", str(CHART / "ci" / name)]
    for item in sets or []:
        args += ["--set", item]
    return args


def render_helm(values: list[str] | None = None, sets: list[str] | None = None) -> list[Obj]:
    return load_all(run(helm_template_args(values, sets)).stdout)


def is_helm_test(obj: Obj) -> bool:
    annotations = obj.get("metadata", {}).get("annotations") or {}
    return annotations.get("helm.sh/hook") == "test"


@dataclass(frozen=True)
class Render:
    """One rendered set of objects, named like `kustomize/dev` or `helm/prod-values.yaml`."""

    name: str
    objects: list[Obj]

    def of_kind(self, kind: str) -> list[Obj]:
        return [o for o in self.objects if o["kind"] == kind]

    def find(self, kind: str, name: str) -> Obj | None:
        return next((o for o in self.of_kind(kind) if o["metadata"]["name"] == name), None)


POD_OWNERS = {"Deployment", "StatefulSet", "DaemonSet", "Job", "ReplicaSet"}


def pod_templates(objects: list[Obj]) -> Iterator[tuple[Obj, Obj]]:
    """(owner, pod metadata+spec) for every workload and bare Pod."""
    for obj in objects:
        if obj["kind"] in POD_OWNERS:
            yield obj, obj["spec"]["template"]
        elif obj["kind"] == "CronJob":
            yield obj, obj["spec"]["jobTemplate"]["spec"]["template"]
        elif obj["kind"] == "Pod":
            yield obj, obj


def containers(pod: Obj) -> list[Obj]:
    spec = pod["spec"]
    return [*spec.get("initContainers", []), *spec.get("containers", [])]


def write_render(render: Render, directory: Path) -> Path:
    """Write one render as a multi-document file (for the CLI checkers)."""
    path = directory / (render.name.replace("/", "__") + ".yaml")
    path.write_text(yaml.safe_dump_all(render.objects, sort_keys=False))
    return path


def render_names() -> list[str]:
    """Names of every render, known at collection time (for parametrize)."""
    return [
        "kustomize/base",
        *(f"kustomize/{o}" for o in overlays()),
        "helm/default",
        *(f"helm/{v}" for v in helm_values_files()),
        "operator",
    ]
