"""istioctl over deploy/istio, offline: `istioctl validate` per file, and `istioctl analyze
--use-kube=false` over each lab step as a user's cluster would hold it (the mesh overlay's
Services and Deployments, the step's directory applied in order, the step's file last).

istioctl is built from the Go module istio.io/istio by tools/mesh/build (scripts/setup/mesh.sh
runs it first; a cache hit takes a few milliseconds). Never skipped: a failed build fails here.

What istioctl checks and what it does not:
- `validate` checks the Istio kinds (unknown fields, weights, ...) but passes Gateway API
  objects without looking at them; their schema is checked by the CRDs on the cluster tier.
- `analyze` only looks at the `default` namespace unless given `-A` (or `-n`): without it,
  everything in roar-mesh would pass unseen. With `-o json` it exits 0 even on errors, so it
  runs twice: once for the exit code, once for the messages.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from manifests import helpers as h

pytestmark = [pytest.mark.manifests, pytest.mark.timeout(1800)]  # a cold build, the first time

MESH_BUILD = h.REPO / "tools" / "mesh" / "build"
ISTIO_DIR = h.REPO / "deploy" / "istio"
#: The kustomize overlay whose Services and Deployments deploy/istio routes to.
MESH_OVERLAY = "mesh"
#: `istioctl analyze`'s exit code when it found messages at or above --failure-threshold.
ANALYZE_FOUND_ISSUES = 79


def istio_files() -> list[Path]:
    return sorted(p for p in ISTIO_DIR.rglob("*.y*ml") if p.suffix in {".yaml", ".yml"})


def file_id(path: Path) -> str:
    return str(path.relative_to(ISTIO_DIR))


@pytest.fixture(scope="session")
def istioctl() -> str:
    build = subprocess.run([str(MESH_BUILD)], capture_output=True, text=True, timeout=3600)
    if build.returncode != 0:
        pytest.fail(
            "building istioctl failed (scripts/setup/mesh.sh builds it):\n" + build.stderr[-4000:],
            pytrace=False,
        )
    return str(Path(build.stdout.strip().splitlines()[-1]) / "istioctl")


@pytest.fixture(scope="session")
def mesh_objects(kustomize_tree: Path) -> list[h.Obj]:
    """The mesh overlay's objects (Services, Deployments with their version labels), which
    analyze needs to resolve hosts and subsets; none while the overlay does not exist."""
    overlay = kustomize_tree / "overlays" / MESH_OVERLAY
    return h.render_kustomize(overlay) if overlay.is_dir() else []


def key(obj: h.Obj) -> tuple[str, str, str, str]:
    meta = obj.get("metadata") or {}
    group = str(obj.get("apiVersion", "")).rpartition("/")[0]
    return group, str(obj.get("kind")), str(meta.get("namespace", "")), str(meta.get("name"))


def layered(mesh: list[h.Obj], step: Path) -> list[h.Obj]:
    """What a cluster holds after the overlay, every file of the step's directory in name order,
    then the step itself: a later object replaces an earlier one of the same kind and name (the
    lab's scenarios are alternative versions of VirtualService roar-web, for example)."""
    objects: dict[tuple[str, str, str, str], h.Obj] = {}
    for obj in mesh:
        objects[key(obj)] = obj
    for path in [*sorted(step.parent.glob("*.y*ml")), step]:
        for obj in h.load_all(path.read_text()):
            objects[key(obj)] = obj
    return list(objects.values())


def analyze(istioctl: str, objects: list[h.Obj], directory: Path) -> tuple[int, list[Any]]:
    """(exit code, messages) of `istioctl analyze --use-kube=false -A` over the objects."""
    path = directory / "analyzed.yaml"
    path.write_text(yaml.safe_dump_all(objects, sort_keys=False))
    base = [istioctl, "analyze", "--use-kube=false", "--all-namespaces", str(path)]
    plain = subprocess.run(base, capture_output=True, text=True, timeout=120)
    as_json = subprocess.run([*base, "-o", "json"], capture_output=True, text=True, timeout=120)
    assert as_json.returncode == 0, as_json.stderr
    return plain.returncode, json.loads(as_json.stdout)


def test_deploy_istio_has_manifests() -> None:
    assert istio_files(), f"no YAML under {ISTIO_DIR}"


@pytest.mark.parametrize("path", istio_files(), ids=file_id)
def test_istioctl_validate(istioctl: str, path: Path) -> None:
    result = subprocess.run([istioctl, "validate", "-f", str(path)], capture_output=True,
                            text=True, timeout=120)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "is valid" in result.stdout + result.stderr


@pytest.mark.parametrize("path", istio_files(), ids=file_id)
def test_istioctl_analyze(
    istioctl: str, mesh_objects: list[h.Obj], path: Path, tmp_path: Path
) -> None:
    code, messages = analyze(istioctl, layered(mesh_objects, path), tmp_path)
    errors = [m for m in messages if m.get("level") == "Error"]
    assert not errors, json.dumps(errors, indent=2)
    assert code == 0, json.dumps(messages, indent=2)


#: A VirtualService that sends a fifth of its traffic to a subset no DestinationRule defines.
MISSING_SUBSET = "no-such-subset"


def test_istioctl_analyze_finds_a_missing_subset(
    istioctl: str, mesh_objects: list[h.Obj], tmp_path: Path
) -> None:
    """The check can fail: one route of a lab's VirtualService renamed to a subset that the
    DestinationRule lacks gives IST0101 at Error level and a non-zero exit."""
    step = next((p for p in istio_files() if any(_subsets(o) for o in h.load_all(p.read_text()))),
                None)  # fmt: skip
    assert step, "no VirtualService with subsets in deploy/istio to break"
    objects = layered(mesh_objects, step)
    vs = next(o for o in h.load_all(step.read_text()) if _subsets(o))
    vs = next(o for o in objects if key(o) == key(vs))
    _subsets(vs)[0]["subset"] = MISSING_SUBSET
    code, messages = analyze(istioctl, objects, tmp_path)
    assert code == ANALYZE_FOUND_ISSUES, messages
    assert any(
        m["code"] == "IST0101" and m["level"] == "Error" and MISSING_SUBSET in m["message"]
        for m in messages
    ), messages


def _subsets(vs: h.Obj) -> list[dict[str, Any]]:
    """Every route destination of a VirtualService that names a subset."""
    if vs.get("kind") != "VirtualService":
        return []
    return [
        route["destination"]
        for rule in vs["spec"].get("http", []) + vs["spec"].get("tcp", [])
        for route in rule.get("route", [])
        if route.get("destination", {}).get("subset")
    ]
