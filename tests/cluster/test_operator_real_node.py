"""Lab 9 on the real node, as docs/lab-9-operator.md tells a learner: the operator itself runs as
a pod from its image under its ServiceAccount (so it reaches the API server from the pod
network), the workshop's RoarApp with five replicas gives five serving pods, 5 -> 3 -> 5 through
the API, and a deleted pod is replaced. Each pod answers on its own address."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from kubekit import KubeCluster, wait_for
from nodekit import (
    assert_on_real_node_and_ready,
    get,
    live_pods,
    pod_url,
    real_namespace,
    wait_rollout,
)

pytestmark = [pytest.mark.cluster, pytest.mark.real_node]

OPERATOR = Path(__file__).resolve().parents[2] / "deploy" / "operator"
SYSTEM = "roar-system"
NS = "roar-lab9"
APP = "roarapp-sample"
WEB_PODS = f"app.kubernetes.io/instance={APP},app.kubernetes.io/component=web"


@pytest.fixture(scope="module")
def operator(kube_cluster: KubeCluster, node_images: None) -> Iterator[None]:
    _forget_other_tests_apps(kube_cluster)
    real_namespace(kube_cluster, SYSTEM)
    kube_cluster.kubectl("apply", "-k", str(OPERATOR))
    wait_rollout(kube_cluster, SYSTEM, "deployment/roar-operator")
    real_namespace(kube_cluster, NS)
    yield
    # The RoarApps go first, waited for while the operator still runs to drop its finalizer;
    # then nothing holds the namespaces, and their pods' slow exits need no waiting (time
    # budget: the session's teardown drains the node).
    kube_cluster.kubectl("delete", "roarapps", "--all", "-n", NS, "--wait=true", "--timeout=60s",
                         check=False, timeout=90)  # fmt: skip
    kube_cluster.kubectl("delete", "namespace", NS, "--wait=false", check=False)
    kube_cluster.kubectl("delete", "-k", str(OPERATOR), "--wait=false", check=False)


def _forget_other_tests_apps(cluster: KubeCluster) -> None:
    """A cluster as a learner's: no RoarApps but the lab's. The kwok tier's operators are stopped
    by now, and RoarApps they left in namespaces being deleted keep kopf's finalizer; this
    cluster-wide operator would adopt them and be refused (403) writing into those namespaces."""
    listed = cluster.kubectl("get", "roarapps", "-A", "-o", "json", check=False)
    if listed.returncode != 0:  # the CRD is not installed yet
        return
    for app in json.loads(listed.stdout)["items"]:
        name, ns = app["metadata"]["name"], app["metadata"]["namespace"]
        cluster.kubectl("patch", "roarapp", name, "-n", ns, "--type=merge",
                        "-p", '{"metadata": {"finalizers": null}}', check=False)  # fmt: skip
        cluster.kubectl("delete", "roarapp", name, "-n", ns, "--wait=false", check=False)


def _app(cluster: KubeCluster) -> dict[str, Any]:
    return cluster.kubectl_json("get", "roarapp", APP, "-n", NS)


def _serving(cluster: KubeCluster, count: int) -> bool:
    """`count` web pods, each Ready on the real node and answering on its own address, and the
    RoarApp's status saying so."""
    web = live_pods(cluster, NS, WEB_PODS)
    if len(web) != count:
        return False
    try:
        for pod in web:
            assert_on_real_node_and_ready(pod)
    except AssertionError:
        return False
    status = _app(cluster).get("status", {})
    ready = any(
        c["type"] == "Ready" and c["status"] == "True" for c in status.get("conditions", [])
    )
    return ready and len(status.get("podNames", [])) == count


def test_operator_runs_as_a_pod_under_its_service_account(
    kube_cluster: KubeCluster, operator: None
) -> None:
    (pod,) = live_pods(kube_cluster, SYSTEM, "app.kubernetes.io/name=roar-operator")
    assert_on_real_node_and_ready(pod)
    assert pod["spec"]["serviceAccountName"] == "roar-operator"
    logs = kube_cluster.kubectl("logs", "-n", SYSTEM, pod["metadata"]["name"]).stdout
    # Its RBAC suffices: no request refused. (Events it posts into a namespace that another test
    # is deleting are refused with 403 NamespaceTerminating; that is not about its permissions.)
    refused = [
        line
        for line in logs.splitlines()
        if ("Forbidden" in line or "Unauthorized" in line) and "being terminated" not in line
    ]
    assert not refused, "\n".join(refused)[-2000:]


def test_lab9_five_replicas_serve_then_three_then_five(
    kube_cluster: KubeCluster, operator: None
) -> None:
    k = kube_cluster.kubectl
    k("apply", "-n", NS, "-f", str(OPERATOR / "samples" / "roarapp-sample.yaml"))
    wait_for(lambda: _serving(kube_cluster, 5), what="five serving pods", timeout=300,
             interval=2)  # fmt: skip
    for pod in live_pods(kube_cluster, NS, WEB_PODS):
        answer = get(f"{pod_url(pod)}/roar/api/v1/status/version")
        assert answer.status_code == 200 and answer.text.startswith("<p>Version</p>"), answer.text

    for replicas in (3, 5):
        patch = json.dumps({"spec": {"replicas": replicas}})
        k("patch", "roarapp", APP, "-n", NS, "--type=merge", "-p", patch)
        wait_for(lambda n=replicas: _serving(kube_cluster, n), what=f"{replicas} serving pods",
                 timeout=240, interval=2)  # fmt: skip


def test_lab9_a_deleted_pod_is_replaced(kube_cluster: KubeCluster, operator: None) -> None:
    victim = live_pods(kube_cluster, NS, WEB_PODS)[0]["metadata"]["name"]
    kube_cluster.kubectl("delete", "pod", victim, "-n", NS, "--wait=false")
    wait_for(
        lambda: (
            _serving(kube_cluster, 5)
            and victim not in {p["metadata"]["name"] for p in live_pods(kube_cluster, NS, WEB_PODS)}
        ),
        what="the deleted pod replaced",
        timeout=240,
        interval=2,
    )


# spec.backup, as docs/lab-9-operator.md §6 tells a learner (in this module to share its operator
# installation): a RoarApp with backup; a sixth agent written through the API; an on-demand backup
# (`kubectl create job --from=cronjob/...`) succeeds; the agent deleted; the documented restore Job
# (deploy/operator/samples/roarapp-sample-restore.yaml, whose RoarApp name is APP) brings it back,
# seen through the API. One RoarApp, one web pod, every wait bounded.

BACKUP_NS = "roar-backup"
AGENT = {"name": "Woody Woodpecker", "species": "bird", "service_start": "1959-05-22",
         "adversary_name": "Buzz Buzzard", "adversary_tech": "menacing stare"}  # fmt: skip


@pytest.fixture(scope="module")
def backed_up(kube_cluster: KubeCluster, operator: None) -> Iterator[str]:
    """The RoarApp with backup, serving; yields one web pod's URL."""
    real_namespace(kube_cluster, BACKUP_NS)
    app = {"apiVersion": "app.example.com/v1alpha1", "kind": "RoarApp",
           "metadata": {"name": APP},
           "spec": {"replicas": 1, "backup": {"schedule": "0 3 * * *", "retention": 2,
                                              "storage": {"size": "64Mi"}}}}  # fmt: skip
    kube_cluster.kubectl("apply", "-n", BACKUP_NS, "-f", "-", input=json.dumps(app))
    wait_for(lambda: _backup_ready(kube_cluster), what="the RoarApp Ready", timeout=300, interval=2)
    wait_for(lambda: kube_cluster.kubectl("get", "cronjob", f"{APP}-backup", "-n", BACKUP_NS,
                                          check=False).returncode == 0,
             what="the backup CronJob", timeout=60)  # fmt: skip
    (pod,) = live_pods(kube_cluster, BACKUP_NS, WEB_PODS)
    yield pod_url(pod)
    kube_cluster.kubectl("delete", "roarapps", "--all", "-n", BACKUP_NS, "--wait=true",
                         "--timeout=60s", check=False, timeout=90)  # fmt: skip
    kube_cluster.kubectl("delete", "namespace", BACKUP_NS, "--wait=false", check=False)


def _backup_ready(cluster: KubeCluster) -> bool:
    status = cluster.kubectl_json("get", "roarapp", APP, "-n", BACKUP_NS).get("status", {})
    return any(c["type"] == "Ready" and c["status"] == "True" for c in status.get("conditions", []))


def _names(url: str) -> list[str]:
    try:
        items = get(f"{url}/api/v1/agents?limit=500").json()["items"]
    except (httpx.HTTPError, ValueError, KeyError):
        return []
    return [a["name"] for a in items]


def _run_job(cluster: KubeCluster, job: str) -> str:
    """Wait for a Job to complete (bounded); its log."""
    cluster.kubectl("wait", "-n", BACKUP_NS, "--for=condition=complete", f"job/{job}",
                    "--timeout=180s", timeout=200)  # fmt: skip
    return cluster.kubectl("logs", "-n", BACKUP_NS, f"job/{job}").stdout


def test_backup_now_then_restore_brings_a_deleted_agent_back(
    kube_cluster: KubeCluster, backed_up: str
) -> None:
    k, url = kube_cluster.kubectl, backed_up
    created = httpx.post(f"{url}/api/v1/agents", json=AGENT, timeout=10)
    assert created.status_code == 201, created.text
    agent_id = created.json()["id"]
    assert AGENT["name"] in _names(url)

    # §6: a backup now.
    k("create", "job", f"--from=cronjob/{APP}-backup", f"{APP}-backup-now", "-n", BACKUP_NS)
    log = _run_job(kube_cluster, f"{APP}-backup-now")
    assert "wrote dump-" in log, log

    deleted = httpx.delete(f"{url}/api/v1/agents/{agent_id}", timeout=10)
    assert deleted.status_code == 204, deleted.text
    assert AGENT["name"] not in _names(url)

    # §6: the documented restore, the sample as shipped (the newest dump).
    sample = OPERATOR / "samples" / "roarapp-sample-restore.yaml"
    k("apply", "-n", BACKUP_NS, "-f", str(sample))
    log = _run_job(kube_cluster, f"{APP}-restore")
    assert "restored dump-" in log, log
    wait_for(lambda: AGENT["name"] in _names(url), what="the agent back through the API",
             timeout=30)  # fmt: skip
    assert len(_names(url)) == 6

    # The backup and restore pods ran restricted, as the db's uid.
    for pod in kube_cluster.kubectl_json(
        "get", "pods", "-n", BACKUP_NS, "-l", "app.kubernetes.io/component=backup"
    )["items"]:
        assert pod["status"]["phase"] == "Succeeded", pod["status"]
        assert pod["spec"]["containers"][0]["securityContext"]["runAsUser"] == 999
