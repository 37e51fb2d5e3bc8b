"""Lab 7 on the real node: `helm install` with the workshop values serves the page on the first
try, `helm test` pods really run their checks (and fail when the app is broken), and an upgrade
to v2 and the rollback keep serving. The tests build on each other, in file order."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from kubekit import KubeCluster, wait_for
from nodekit import (
    BASE,
    agent_names,
    answers,
    assert_on_real_node_and_ready,
    get,
    live_pods,
    real_namespace,
    request_loop,
    serves_only,
    wait_rollout,
)

from roar.db.schema import SEED_AGENTS

pytestmark = [pytest.mark.cluster, pytest.mark.real_node]

CHART = Path(__file__).resolve().parents[2] / "deploy" / "helm" / "roar"
NS = "roar-helm"
RELEASE = "roar"
VALUES = ("-f", str(CHART / "ci" / "workshop-nodeport-values.yaml"))


@pytest.fixture(scope="module")
def release(kube_cluster: KubeCluster, node_images: None) -> Iterator[str]:
    real_namespace(kube_cluster, NS)
    yield RELEASE
    # Not waited for (time budget): nothing later uses this namespace, and the session's
    # teardown drains the node.
    kube_cluster.helm("uninstall", RELEASE, "-n", NS, check=False)
    kube_cluster.kubectl("delete", "namespace", NS, "--wait=false", check=False)


def test_lab7_install_serves_the_page_on_the_first_try(
    kube_cluster: KubeCluster, release: str
) -> None:
    kube_cluster.helm("install", release, str(CHART), "-n", NS, *VALUES, "--wait",
                      "--timeout=6m", timeout=420)  # fmt: skip
    for pod in live_pods(kube_cluster, NS, f"app.kubernetes.io/instance={release}"):
        assert_on_real_node_and_ready(pod)
    assert get(f"{BASE}/roar/").status_code == 200
    assert agent_names(BASE) == [a["NAME"] for a in SEED_AGENTS]


def test_lab7_helm_test_pods_run_their_checks_and_pass(
    kube_cluster: KubeCluster, release: str
) -> None:
    out = kube_cluster.helm("test", release, "-n", NS, "--logs", "--timeout=3m", timeout=240)
    assert "Phase:          Succeeded" in out.stdout
    assert "Failed" not in out.stdout
    assert "200" in out.stdout  # the test pods' own output: the answers they got


def test_lab7_helm_test_fails_when_the_app_is_broken(
    kube_cluster: KubeCluster, release: str
) -> None:
    """With the database scaled away, /readyz answers 503 and the test pods say so."""
    db = f"statefulset/{release}-db"
    kube_cluster.kubectl("scale", "-n", NS, db, "--replicas=0")
    try:
        wait_for(lambda: answers(f"{BASE}/roar/api/v1/registry", 503) or not answers(
            f"{BASE}/roar/api/v1/registry"), what="the app broken", timeout=120)  # fmt: skip
        res = kube_cluster.helm("test", release, "-n", NS, "--timeout=2m", check=False,
                                timeout=180)  # fmt: skip
        assert res.returncode != 0, res.stdout
        assert "failed" in (res.stdout + res.stderr).lower()
    finally:
        kube_cluster.kubectl("scale", "-n", NS, db, "--replicas=1")
        wait_rollout(kube_cluster, NS, db)
    wait_for(lambda: answers(f"{BASE}/roar/api/v1/registry"), what="serving again", timeout=180)


def test_lab7_upgrade_to_v2_and_rollback_serve_each_version(
    kube_cluster: KubeCluster, release: str
) -> None:
    url = f"{BASE}/roar/api/v1/status/version"

    # The chart draws the db passwords once per render and keeps them on upgrade (lookup), so
    # the pods' checksum/secret does not change: a web-only upgrade leaves the db pod alone.
    # With the workshop's single web pod, the old pod may answer for a moment after `--wait`
    # returns: each phase first waits until only the new version answers, then a bounded loop
    # must get nothing but 200s from it.
    db_uid = _db_pod_uid(kube_cluster, release)
    kube_cluster.helm("upgrade", release, str(CHART), "-n", NS, *VALUES, "--set", "flavor=v2",
                      "--wait", "--timeout=5m", timeout=360)  # fmt: skip
    assert _db_pod_uid(kube_cluster, release) == db_uid, "the web-only upgrade restarted the db"
    wait_for(lambda: serves_only(url, "00.02.00"), what="v2 serving", timeout=180, interval=1)
    up = request_loop(url, until=lambda: False, max_requests=200, max_seconds=20)
    assert up.errors == [] and set(up.statuses) == {200}, (up.errors[:3], up.statuses)
    assert set(up.versions) == {"00.02.00"}
    kube_cluster.helm("rollback", release, "1", "-n", NS, "--wait", "--timeout=5m", timeout=360)
    wait_for(lambda: serves_only(url, "00.01.00"), what="v1 serving", timeout=180, interval=1)
    back = request_loop(url, until=lambda: False, max_requests=200, max_seconds=20)
    assert back.errors == [] and set(back.statuses) == {200}, (back.errors[:3], back.statuses)
    assert set(back.versions) == {"00.01.00"}
    assert _db_pod_uid(kube_cluster, release) == db_uid, "the rollback restarted the db"
    history = kube_cluster.helm("history", release, "-n", NS).stdout
    assert "Rollback to 1" in history


def _db_pod_uid(cluster: KubeCluster, release: str) -> str:
    (pod,) = live_pods(cluster, NS, f"app.kubernetes.io/instance={release},"
                       "app.kubernetes.io/component=db")  # fmt: skip
    return str(pod["metadata"]["uid"])
