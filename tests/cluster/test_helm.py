"""The Helm chart's life cycle on a real API server: install --wait, upgrade (a rollout to a new
image tag), rollback, and `helm test`.

Under kwok no container runs: "Ready" means scheduled and marked Ready by kwok, and the test hook
pods end Succeeded through tools/cluster/kwok/stage-pod-run-once-complete.yaml. So `helm test`
here proves that the test pods are created, valid and admitted, never that their checks pass.
The tests in this module build on each other, in file order, on one release."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubekit import KubeCluster, wait_for

pytestmark = pytest.mark.cluster

CHART = Path(__file__).resolve().parents[2] / "deploy" / "helm" / "roar"
RELEASE = "roar"
NEW_TAG = "cluster-test-2"


@pytest.fixture(scope="module")
def release_ns(kube_cluster: KubeCluster) -> Iterator[str]:
    if not CHART.is_dir():
        # The only skip in this tier: the chart is written elsewhere and may not have landed.
        pytest.skip(f"{CHART.relative_to(CHART.parents[3])} does not exist yet")
    ns = f"helm-{uuid.uuid4().hex[:6]}"
    yield ns
    kube_cluster.helm("uninstall", RELEASE, "-n", ns, check=False)
    kube_cluster.kubectl("delete", "namespace", ns, "--wait=false", check=False)


def images(cluster: KubeCluster, ns: str) -> dict[str, list[str]]:
    """Deployment name -> the images of its pod template (init containers included)."""
    out = {}
    for dep in cluster.kubectl_json("get", "deployments", "-n", ns)["items"]:
        pod = dep["spec"]["template"]["spec"]
        out[dep["metadata"]["name"]] = [
            c["image"] for c in [*pod.get("initContainers", []), *pod["containers"]]
        ]
    return out


def assert_deployments_complete(cluster: KubeCluster, ns: str) -> list[dict[str, Any]]:
    deps = cluster.kubectl_json("get", "deployments", "-n", ns)["items"]
    assert deps, "the chart made no Deployment"
    for dep in deps:
        cluster.kubectl(
            "rollout", "status", f"deployment/{dep['metadata']['name']}", "-n", ns,
            "--timeout=180s",
        )  # fmt: skip
    return deps


def last_revision(cluster: KubeCluster, ns: str) -> dict[str, Any]:
    history = json.loads(cluster.helm("history", RELEASE, "-n", ns, "-o", "json").stdout)
    return max(history, key=lambda r: r["revision"])


def test_install_waits_until_ready(kube_cluster: KubeCluster, release_ns: str) -> None:
    kube_cluster.helm(
        "install", RELEASE, str(CHART), "-n", release_ns, "--create-namespace",
        "--wait", "--timeout=5m",
    )  # fmt: skip
    assert last_revision(kube_cluster, release_ns)["status"] == "deployed"
    for dep in assert_deployments_complete(kube_cluster, release_ns):
        want = dep["spec"].get("replicas", 1)
        assert dep["status"].get("readyReplicas", 0) == want, dep["metadata"]["name"]
    for sts in kube_cluster.kubectl_json("get", "statefulsets", "-n", release_ns)["items"]:
        want = sts["spec"].get("replicas", 1)
        assert sts["status"].get("readyReplicas", 0) == want, sts["metadata"]["name"]


def test_upgrade_rolls_out_the_new_tag(kube_cluster: KubeCluster, release_ns: str) -> None:
    before = images(kube_cluster, release_ns)
    kube_cluster.helm(
        "upgrade", RELEASE, str(CHART), "-n", release_ns, "--reuse-values",
        "--set", f"image.tag={NEW_TAG}", "--wait", "--timeout=5m",
    )  # fmt: skip
    after = images(kube_cluster, release_ns)
    changed = [d for d in after if after[d] != before.get(d)]
    assert changed, f"--set image.tag={NEW_TAG} changed no Deployment's image: {after}"
    for name in changed:
        assert any(i.endswith(f":{NEW_TAG}") for i in after[name]), after[name]
    assert_deployments_complete(kube_cluster, release_ns)

    # Each rolled Deployment's old ReplicaSets are scaled to zero, the new one carries all pods.
    for name in changed:

        def old_ones_drained(name: str = name) -> bool:
            _, old = replica_sets(kube_cluster, release_ns, name)
            return bool(old) and all(
                rs["spec"]["replicas"] == 0 and rs["status"].get("replicas", 0) == 0 for rs in old
            )

        wait_for(old_ones_drained, what=f"{name}'s old ReplicaSets scaled to 0")
        new, _ = replica_sets(kube_cluster, release_ns, name)
        dep = kube_cluster.kubectl_json("get", "deployment", name, "-n", release_ns)
        assert new["status"].get("readyReplicas", 0) == dep["spec"]["replicas"]


def replica_sets(
    cluster: KubeCluster, ns: str, deployment: str
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A Deployment's current ReplicaSet and its older ones (told apart by revision)."""
    dep = cluster.kubectl_json("get", "deployment", deployment, "-n", ns)
    revision = dep["metadata"]["annotations"]["deployment.kubernetes.io/revision"]
    uid = dep["metadata"]["uid"]
    owned = [
        rs
        for rs in cluster.kubectl_json("get", "replicasets", "-n", ns)["items"]
        if any(o["uid"] == uid for o in rs["metadata"].get("ownerReferences", []))
    ]
    key = "deployment.kubernetes.io/revision"
    new = [rs for rs in owned if rs["metadata"]["annotations"][key] == revision]
    assert len(new) == 1, [rs["metadata"]["name"] for rs in owned]
    return new[0], [rs for rs in owned if rs["metadata"]["annotations"][key] != revision]


def test_rollback_restores_the_previous_revision(
    kube_cluster: KubeCluster, release_ns: str
) -> None:
    upgraded = images(kube_cluster, release_ns)
    kube_cluster.helm("rollback", RELEASE, "1", "-n", release_ns, "--wait", "--timeout=5m")
    rev = last_revision(kube_cluster, release_ns)
    assert rev["status"] == "deployed"
    assert "Rollback to 1" in rev["description"]
    restored = images(kube_cluster, release_ns)
    assert restored != upgraded
    assert not any(i.endswith(f":{NEW_TAG}") for imgs in restored.values() for i in imgs)
    assert_deployments_complete(kube_cluster, release_ns)


def test_helm_test_creates_the_test_pods(kube_cluster: KubeCluster, release_ns: str) -> None:
    res = kube_cluster.helm("test", RELEASE, "-n", release_ns, "--timeout=3m", check=False)

    def values(key: str) -> list[str]:
        return [ln.split(":", 1)[1].strip() for ln in res.stdout.splitlines() if ln.startswith(key)]

    # Helm reports each test hook it ran: "TEST SUITE: <pod>" ... "Phase: <phase>".
    suites = [s for s in values("TEST SUITE:") if s != "None"]
    assert suites, f"the chart has no test hook pod:\n{res.stdout}\n{res.stderr}"
    # Succeeded is kwok's doing (a run-once pod ends as if it exited 0): nothing inside ran.
    assert values("Phase:") == ["Succeeded"] * len(suites), res.stdout
    assert res.returncode == 0, res.stderr
    nodes = {n["metadata"]["name"] for n in kube_cluster.kubectl_json("get", "nodes")["items"]}
    for name in suites:
        got = kube_cluster.kubectl("get", "pod", name, "-n", release_ns, "-o", "json", check=False)
        if got.returncode != 0:  # a hook-delete-policy of hook-succeeded removed it
            assert "NotFound" in got.stderr
            continue
        pod = json.loads(got.stdout)
        assert "test" in pod["metadata"]["annotations"]["helm.sh/hook"]
        assert pod["spec"]["nodeName"] in nodes  # scheduled like any pod
        assert pod["status"]["phase"] == "Succeeded"
