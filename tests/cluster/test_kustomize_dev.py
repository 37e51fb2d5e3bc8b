"""The kustomize dev overlay on a real API server: every object passes a server-side dry-run, and
once applied every Deployment and StatefulSet becomes Ready (pods on kwok nodes, PVCs bound)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubekit import KubeCluster

from manifests.helpers import prepare_kustomize_tree

pytestmark = pytest.mark.cluster

SOURCE = Path(__file__).resolve().parents[2] / "deploy" / "kustomize" / "overlays" / "dev"


@pytest.fixture(scope="module")
def overlay(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The dev overlay in a copy of deploy/kustomize whose gitignored credential env files are
    made from their committed .example files (a fresh clone has none)."""
    if not SOURCE.is_dir():
        # The only skip in this tier: the overlay is written elsewhere and may not have landed.
        pytest.skip(f"{SOURCE.relative_to(SOURCE.parents[3])} does not exist yet")
    return prepare_kustomize_tree(tmp_path_factory.mktemp("kustomize")) / "overlays" / "dev"


@pytest.fixture(scope="module")
def dev_objects(kube_cluster: KubeCluster, overlay: Path) -> Iterator[list[dict[str, Any]]]:
    """The overlay rendered by the built kubectl's kustomize (client side), as objects; deleted
    at the end, so the real-node labs find the workshop's namespace and NodePort free."""
    out = kube_cluster.kubectl("apply", "-k", str(overlay), "--dry-run=client", "-o", "json")
    doc = json.loads(out.stdout)
    objects = doc["items"] if doc.get("kind") == "List" else [doc]
    assert objects, "the overlay rendered no objects"
    # A server-side dry-run of a namespaced object needs its namespace to exist already, and a
    # dry-run creates nothing; so the overlay's Namespaces are applied for real first.
    namespaces = [o for o in objects if o["kind"] == "Namespace"]
    if namespaces:
        kube_cluster.kubectl(
            "apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List",
                                                  "items": namespaces})
        )  # fmt: skip
    for ns in {o["metadata"].get("namespace") for o in objects} - {None}:
        if kube_cluster.kubectl("get", "namespace", ns, check=False).returncode != 0:
            kube_cluster.kubectl("create", "namespace", ns)
    yield objects
    kube_cluster.kubectl("delete", "-k", str(overlay), "--wait=true", "--timeout=180s",
                         check=False, timeout=240)  # fmt: skip


def _ref(obj: dict[str, Any]) -> str:
    return f"{obj['kind']}/{obj['metadata']['name']}"


def test_server_side_dry_run_of_every_object(
    overlay: Path, kube_cluster: KubeCluster, dev_objects: list[dict[str, Any]]
) -> None:
    res = kube_cluster.kubectl(
        "apply", "-k", str(overlay), "--dry-run=server", "--validate=strict", "-o", "json"
    )
    doc = json.loads(res.stdout)
    checked = doc["items"] if doc.get("kind") == "List" else [doc]
    # Every rendered object came back from the server, defaulted and admitted.
    assert sorted(map(_ref, checked)) == sorted(map(_ref, dev_objects))
    # ... and none of it was stored (Namespaces aside: the fixture made those for real).
    for obj in dev_objects:
        if obj["kind"] != "Namespace":
            ns = obj["metadata"].get("namespace", "default")
            got = kube_cluster.kubectl("get", _ref(obj), "-n", ns, check=False)
            assert got.returncode != 0 and "NotFound" in got.stderr, _ref(obj)


def test_apply_and_all_workloads_become_ready(
    overlay: Path, kube_cluster: KubeCluster, dev_objects: list[dict[str, Any]]
) -> None:
    kube_cluster.kubectl("apply", "-k", str(overlay), "--validate=strict")
    workloads = [o for o in dev_objects if o["kind"] in ("Deployment", "StatefulSet")]
    assert workloads, "the dev overlay has no Deployment or StatefulSet"
    for obj in workloads:
        ns = obj["metadata"].get("namespace", "default")
        kube_cluster.kubectl(
            "rollout", "status", f"{obj['kind'].lower()}/{obj['metadata']['name']}",
            "-n", ns, "--timeout=180s",
        )  # fmt: skip
        live = kube_cluster.kubectl_json("get", _ref(obj).lower(), "-n", ns)
        want = live["spec"].get("replicas", 1)
        assert live["status"].get("readyReplicas", 0) == want, _ref(obj)
    # StatefulSet claims are bound (the default StorageClass of tools/cluster/up).
    for ns in {o["metadata"].get("namespace", "default") for o in workloads}:
        for pvc in kube_cluster.kubectl_json("get", "pvc", "-n", ns)["items"]:
            assert pvc["status"]["phase"] == "Bound", pvc["metadata"]["name"]
