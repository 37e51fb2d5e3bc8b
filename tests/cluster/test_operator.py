"""Lab 9 on a real control plane: the operator, as its own ServiceAccount with the shipped RBAC,
turns the workshop's RoarApp into the whole app, follows a scale from 5 to 3, repairs a deleted
Service, and its children go with the RoarApp (garbage collection by kube-controller-manager)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubekit import KubeCluster, wait_for

pytestmark = pytest.mark.cluster

ROOT = Path(__file__).resolve().parents[2]
OPERATOR = ROOT / "deploy" / "operator"
APP = "roarapp-sample"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _token_kubeconfig(cluster: KubeCluster, namespace: str, path: Path) -> Path:
    token = cluster.kubectl(
        "create", "token", "roar-operator", "-n", namespace, "--duration=1h"
    ).stdout.strip()
    admin = json.loads(cluster.kubectl("config", "view", "--raw", "-o", "json").stdout)
    # Only the token: the admin kubeconfig's client certificate would be authenticated first.
    path.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "op",
        "clusters": [{"name": "c", "cluster": admin["clusters"][0]["cluster"]}],
        "users": [{"name": "op", "user": {"token": token}}],
        "contexts": [{"name": "op", "context": {"cluster": "c", "user": "op",
                                                "namespace": namespace}}],
    }))  # fmt: skip
    return path


@pytest.fixture
def operator(
    kube_cluster: KubeCluster, namespace: str, tmp_path: Path, output_dir: Path
) -> Iterator[subprocess.Popen[bytes]]:
    k = kube_cluster.kubectl
    k("apply", "-f", str(OPERATOR / "crd.yaml"))
    k("wait", "--for=condition=Established", "crd/roarapps.app.example.com", "--timeout=60s")
    role = next(d for d in yaml.safe_load_all((OPERATOR / "rbac.yaml").read_text())
                if d["kind"] == "ClusterRole")  # fmt: skip
    k("apply", "-f", "-", input=json.dumps(role))
    k("create", "serviceaccount", "roar-operator", "-n", namespace)
    # The shipped ClusterRole, granted in this namespace only.
    k("create", "rolebinding", "roar-operator", "--clusterrole=roar-operator",
      f"--serviceaccount={namespace}:roar-operator", "-n", namespace)  # fmt: skip
    kubeconfig = _token_kubeconfig(kube_cluster, namespace, tmp_path / "operator.kubeconfig")
    log = (output_dir / f"operator-{namespace}.log").open("wb")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ROAR_", "KUBECONFIG"))}
    env |= {
        "ROAR_OPERATOR_METRICS_PORT": str(_free_port()),
        "ROAR_OPERATOR_LIVENESS_ENDPOINT": f"http://127.0.0.1:{_free_port()}/healthz",
        "ROAR_OPERATOR_RESYNC_SECONDS": "5",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "roar.operator", "--kubeconfig", str(kubeconfig),
         "-n", namespace, "--verbose"],
        env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def _get(cluster: KubeCluster, namespace: str, *what: str) -> dict[str, Any] | None:
    res = cluster.kubectl("get", *what, "-n", namespace, "-o", "json", check=False)
    return json.loads(res.stdout) if res.returncode == 0 else None


def _ready_with(cluster: KubeCluster, namespace: str, pods: int) -> bool:
    app = _get(cluster, namespace, "roarapp", APP) or {}
    status = app.get("status", {})
    ready = any(
        c["type"] == "Ready" and c["status"] == "True" for c in status.get("conditions", [])
    )
    return ready and len(status.get("podNames", [])) == pods


def test_lab9_on_a_real_control_plane(
    kube_cluster: KubeCluster, namespace: str, operator: subprocess.Popen[bytes]
) -> None:
    k = kube_cluster.kubectl
    k("apply", "-n", namespace, "-f", str(OPERATOR / "samples" / "roarapp-sample.yaml"))

    children = [
        ("deployment", f"{APP}-web"), ("statefulset", f"{APP}-db"),
        ("service", f"{APP}-web"), ("service", f"{APP}-mysql"),
        ("service", f"{APP}-db-headless"), ("secret", f"{APP}-db-credentials"),
        ("configmap", f"{APP}-db-config"), ("serviceaccount", f"{APP}-web"),
    ]  # fmt: skip
    wait_for(lambda: all(_get(kube_cluster, namespace, *c) for c in children),
             what="every child of the RoarApp", timeout=90)  # fmt: skip
    assert operator.poll() is None, "the operator exited"
    wait_for(lambda: _ready_with(kube_cluster, namespace, 5),
             what="status Ready with 5 podNames", timeout=180)  # fmt: skip
    app = _get(kube_cluster, namespace, "roarapp", APP)
    assert app is not None
    uid = app["metadata"]["uid"]
    dep = _get(kube_cluster, namespace, "deployment", f"{APP}-web")
    assert dep is not None and dep["metadata"]["ownerReferences"][0]["uid"] == uid
    printed = k("get", "roarapps", "-n", namespace).stdout
    assert "REPLICAS" in printed and "AllReplicasReady" in printed

    # Lab 9's edit: 5 -> 3.
    k("patch", "roarapp", APP, "-n", namespace, "--type=merge", "-p", '{"spec":{"replicas":3}}')
    wait_for(lambda: _ready_with(kube_cluster, namespace, 3),
             what="status Ready with 3 podNames", timeout=180)  # fmt: skip

    # Drift: a deleted Service comes back (a new object, so a new uid).
    old = (_get(kube_cluster, namespace, "service", f"{APP}-web") or {})["metadata"]["uid"]
    k("delete", "service", f"{APP}-web", "-n", namespace)
    wait_for(lambda: ((_get(kube_cluster, namespace, "service", f"{APP}-web") or {})
                      .get("metadata", {}).get("uid") not in (None, old)),
             what="the deleted Service recreated", timeout=60)  # fmt: skip

    # Delete: children are collected; the data PVC is kept (deleteClaimOnDelete: false).
    k("delete", "roarapp", APP, "-n", namespace, "--timeout=120s")
    wait_for(lambda: not any(_get(kube_cluster, namespace, *c) for c in children),
             what="children garbage-collected", timeout=180)  # fmt: skip
    pvcs = _get(kube_cluster, namespace, "pvc") or {"items": []}
    assert [p["metadata"]["name"] for p in pvcs["items"]] == [f"data-{APP}-db-0"]
