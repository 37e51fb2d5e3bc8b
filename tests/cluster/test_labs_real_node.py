"""Workshop labs 4-6 replayed on the real node, as docs/labs-4-7.md tells a learner: the dev
overlay applied with `kubectl apply -k`, the page and the API through the NodePort on 127.0.0.1,
the broken-image trap, a wrong password, lab 6's sixth row written with `kubectl exec`, a db pod
deleted with and without a volume, and a rolling update under load that loses no request.

The tests in this module build on each other, in file order, on one `roar-dev` namespace."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubekit import KubeCluster, wait_for
from nodekit import (
    BASE,
    WEB,
    WOODY,
    BackendWatch,
    agent_names,
    answers,
    assert_on_real_node_and_ready,
    event_reasons,
    get,
    live_pods,
    pod_url,
    pods,
    real_namespace,
    request_loop,
    serves_only,
    sql,
    wait_rollout,
    wait_serving_steadily,
)

from roar.db.schema import SEED_AGENTS, SIXTH_AGENT

pytestmark = [pytest.mark.cluster, pytest.mark.real_node]

NS = "roar-dev"
WEB_PODS = "app.kubernetes.io/component=web"
SEED_NAMES = [a["NAME"] for a in SEED_AGENTS]


@pytest.fixture(scope="module")
def dev(kube_cluster: KubeCluster, node_images: None, kustomize_tree: Path) -> Iterator[Path]:
    overlay = kustomize_tree / "overlays" / "dev"
    real_namespace(kube_cluster, NS)
    kube_cluster.kubectl("apply", "-k", str(overlay))
    yield overlay
    # Not waited for (time budget): the session's teardown drains the node.
    kube_cluster.kubectl("delete", "-k", str(overlay), "--wait=false", check=False)


def test_lab4_apply_gives_running_ready_pods_on_the_real_node(
    kube_cluster: KubeCluster, dev: Path
) -> None:
    wait_rollout(kube_cluster, NS, "statefulset/roar-db")
    wait_rollout(kube_cluster, NS, "deployment/roar-web")
    for pod in [
        *pods(kube_cluster, NS, WEB_PODS),
        *pods(kube_cluster, NS, "app.kubernetes.io/component=db"),
    ]:
        assert_on_real_node_and_ready(pod)  # Ready because its readiness probe passes


def test_lab4_nodeport_gives_the_page_and_the_five_agents(dev: Path) -> None:
    page = get(f"{BASE}/roar/")
    assert page.status_code == 200
    assert "text/html" in page.headers["content-type"]
    assert "Registry of Animal Responders" in page.text or "ROAR" in page.text
    assert agent_names(BASE) == SEED_NAMES


def test_lab4_logs_show_the_json_start_up_line(kube_cluster: KubeCluster, dev: Path) -> None:
    logs = kube_cluster.kubectl("logs", "-n", NS, "deployment/roar-web", "-c", "web").stdout
    records = [json.loads(line) for line in logs.splitlines() if line.startswith("{")]
    started = [r for r in records if r.get("msg", "").startswith("ROAR ")]
    assert started, logs[-2000:]
    assert started[0]["level"] in ("INFO", "info") and "/roar/" in started[0]["msg"]
    described = kube_cluster.kubectl("describe", "pods", "-n", NS, "-l", WEB_PODS).stdout
    # The serving container never restarted. (`migrate` may have: on a first install it retries
    # until the db accepts connections, as docs/labs-4-7.md says.)
    containers = described.split("\nContainers:", 1)[1].split("\nConditions:", 1)[0]
    counts = [line.split()[-1] for line in containers.splitlines() if "Restart Count:" in line]
    assert counts == ["0"], described


def test_lab4_broken_image_shows_pull_errors_and_undo_recovers(
    kube_cluster: KubeCluster, dev: Path
) -> None:
    before = {p["metadata"]["name"] for p in live_pods(kube_cluster, NS, WEB_PODS)}
    broken = "localhost:5000/roar-wbe:0.2.0"
    kube_cluster.kubectl("set", "image", "-n", NS, "deployment/roar-web",
                         f"web={broken}", f"migrate={broken}")  # fmt: skip

    def new_pod_reasons() -> set[str]:
        new = [
            p for p in live_pods(kube_cluster, NS, WEB_PODS) if p["metadata"]["name"] not in before
        ]
        return set().union(*(event_reasons(kube_cluster, NS, p["metadata"]["name"]) for p in new))

    wait_for(lambda: {"Failed", "BackOff"} <= new_pod_reasons(), what="pull errors on the new pod",
             timeout=120)  # fmt: skip
    statuses = [
        (s.get("state", {}).get("waiting") or {}).get("reason")
        for p in live_pods(kube_cluster, NS, WEB_PODS)
        for s in p["status"].get("initContainerStatuses", [])
    ]
    assert {"ErrImagePull", "ImagePullBackOff"} & set(statuses), statuses
    # maxUnavailable 0: the old pod keeps serving while the new one cannot start.
    assert answers(f"{BASE}/roar/api/v1/registry")
    kube_cluster.kubectl("rollout", "undo", "-n", NS, "deployment/roar-web")
    wait_rollout(kube_cluster, NS, "deployment/roar-web")
    images = {
        c["image"] for p in live_pods(kube_cluster, NS, WEB_PODS) for c in p["spec"]["containers"]
    }
    assert images == {WEB}
    assert agent_names(BASE) == SEED_NAMES


def test_lab5_wrong_password_gives_503_and_a_log_line_naming_the_database(
    kube_cluster: KubeCluster, dev: Path
) -> None:
    """The Secret's password wired wrong: the new pod answers 503 (not an empty table), says why
    in its log and never turns ready, so the old pod keeps serving; undo recovers."""
    before = {p["metadata"]["name"] for p in live_pods(kube_cluster, NS, WEB_PODS)}
    kube_cluster.kubectl("set", "env", "-n", NS, "deployment/roar-web", "-c", "web",
                         "MYSQL_PASSWORD=not-the-password")  # fmt: skip
    try:
        _misconfigured_pod_answers_503(kube_cluster, before)
    finally:
        # Undo even when an assertion failed: the later tests need a deployment that can roll out.
        kube_cluster.kubectl("rollout", "undo", "-n", NS, "deployment/roar-web")
        wait_rollout(kube_cluster, NS, "deployment/roar-web")
    assert agent_names(BASE) == SEED_NAMES


def _misconfigured_pod_answers_503(kube_cluster: KubeCluster, before: set[str]) -> None:
    def new_web_running() -> str | None:
        for p in live_pods(kube_cluster, NS, WEB_PODS):
            running = any(
                "running" in s.get("state", {}) for s in p["status"].get("containerStatuses", [])
            )
            if p["metadata"]["name"] not in before and running:
                return p["metadata"]["name"]
        return None

    wait_for(lambda: new_web_running() is not None, what="the misconfigured pod", timeout=120)
    pod = new_web_running()
    assert pod
    # "Running" means the process started, not that it listens yet: retry refused connections
    # (bounded, 60 s) until the server answers, then report its status.
    probe = (
        "import time, urllib.request, urllib.error\n"
        "url = 'http://127.0.0.1:8080/roar/api/v1/registry'\n"
        "deadline = time.monotonic() + 60\n"
        "while True:\n"
        "    try:\n"
        "        r = urllib.request.urlopen(url, timeout=10)\n"
        "        print(r.status, r.read().decode()[:200]); break\n"
        "    except urllib.error.HTTPError as e:\n"
        "        print(e.code, e.read().decode()[:200]); break\n"
        "    except urllib.error.URLError:\n"
        "        if time.monotonic() > deadline: raise\n"
        "        time.sleep(0.5)\n"
    )
    answer = kube_cluster.kubectl(
        "exec", "-n", NS, pod, "-c", "web", "--", "python3", "-c", probe
    ).stdout
    assert answer.startswith("503"), answer
    wait_for(
        lambda: (
            "database" in kube_cluster.kubectl("logs", "-n", NS, pod, "-c", "web").stdout.lower()
        ),
        what="a log line naming the database",
    )
    ready = [p for p in live_pods(kube_cluster, NS, WEB_PODS) if p["metadata"]["name"] == pod]
    assert ready and not all(s["ready"] for s in ready[0]["status"]["containerStatuses"])
    assert agent_names(BASE) == SEED_NAMES  # the old pod still serves the real table


def test_lab6_row_inserted_with_exec_appears_and_survives_the_db_pod(
    kube_cluster: KubeCluster, dev: Path
) -> None:
    sql(kube_cluster, NS, "roar-db-0", "db", WOODY)
    t0 = time.monotonic()
    # The documented bound is ROAR_CACHE_TTL (1 s); the slack covers a loaded 2-core machine.
    wait_for(lambda: SIXTH_AGENT["NAME"] in agent_names(BASE), what="the sixth row", timeout=5,
             interval=0.1)  # fmt: skip
    print(f"sixth row visible after {time.monotonic() - t0:.2f} s")
    kube_cluster.kubectl("delete", "pod", "-n", NS, "roar-db-0", "--wait=true")
    kube_cluster.kubectl("wait", "-n", NS, "--for=condition=Ready", "pod/roar-db-0",
                         "--timeout=180s", timeout=200)  # fmt: skip
    wait_serving_steadily(f"{BASE}/roar/api/v1/registry", what="web ready again")
    assert agent_names(BASE) == [*SEED_NAMES, SIXTH_AGENT["NAME"]]


def test_rolling_update_under_load_loses_no_request(kube_cluster: KubeCluster, dev: Path) -> None:
    """v1 -> v2 (the manifests pick the flavor with ROAR_FLAVOR) through the NodePort, a new
    connection per request: readiness and the drain keep every request answered (real kubelet
    probes, real endpoint updates)."""
    url = f"{BASE}/roar/api/v1/status/version"
    wait_serving_steadily(url, what="web serving before the rollout")  # lab 6 restarted the db
    assert get(url).text.endswith("00.01.00")
    # Three replicas, as for any zero-downtime rollout: with one, a single missed readiness probe
    # (a busy 2-core machine) leaves the Service without endpoints, whatever the rollout does.
    kube_cluster.kubectl("scale", "-n", NS, "deployment/roar-web", "--replicas=3")
    wait_rollout(kube_cluster, NS, "deployment/roar-web")
    watch = BackendWatch(NS, "roar-web")
    watch.start()
    kube_cluster.kubectl("set", "env", "-n", NS, "deployment/roar-web", "-c", "web",
                         "ROAR_FLAVOR=v2")  # fmt: skip

    def rolled_out() -> bool:
        dep = kube_cluster.kubectl_json("get", "deployment", "roar-web", "-n", NS)
        st = dep["status"]
        return (
            st.get("observedGeneration") == dep["metadata"]["generation"]
            and st.get("updatedReplicas") == st.get("replicas") == st.get("readyReplicas") == 3
            and len(live_pods(kube_cluster, NS, WEB_PODS)) == 3
            and not pods_terminating(kube_cluster)
        )

    result = request_loop(url, until=rolled_out, max_requests=6000, max_seconds=240)
    # Then until only v2 answers (kube-proxy drops the old pods' endpoints a moment after).
    tail = request_loop(url, until=lambda: serves_only(url, "00.02.00"), max_seconds=60)
    closed = watch.stop()
    print(
        f"{result.total} requests in the rollout: {result.statuses} {result.versions}; "
        f"earlier unanswered attempts forgotten first: {result.forgotten}\n{watch.report()}"
    )
    assert rolled_out(), "the rollout did not finish within the loop's bound"
    # The drain: each old pod closed its listener only after kube-proxy stopped sending to it.
    assert len(closed) == 3, watch.report()
    assert all(b.out_of_rules is not None and b.out_of_rules < b.closed
               for b in closed.values()), watch.report()  # fmt: skip
    assert result.errors == [] and tail.errors == [], watch.report()
    assert set(result.statuses) == {200} and set(tail.statuses) == {200}
    assert result.versions["00.01.00"] > 0 and result.versions["00.02.00"] > 0
    assert serves_only(url, "00.02.00")


def pods_terminating(cluster: KubeCluster) -> bool:
    return any(p["metadata"].get("deletionTimestamp") for p in pods(cluster, NS, WEB_PODS))


def test_lab6_hostpath_overlay_keeps_the_row_on_the_node(
    kube_cluster: KubeCluster, node_images: None, kustomize_tree: Path, dev: Path
) -> None:
    """The workshop's version of lab 6: a hostPath PV and its claim (in the overlay's namespace),
    the root `data-owner` step running the db's own image, the row surviving the db pod."""
    overlay = kustomize_tree / "overlays" / "lab6-hostpath"
    data = Path("/mnt/data/roar-mysql")  # the PV's path on the node, i.e. on this machine
    made_parent = not data.parent.exists()
    real_namespace(kube_cluster, NS)  # lab 6 says: delete lab 4's objects first
    try:
        kube_cluster.kubectl("apply", "-k", str(overlay))
        wait_rollout(kube_cluster, NS, "statefulset/roar-db")
        wait_rollout(kube_cluster, NS, "deployment/roar-web")
        claim = kube_cluster.kubectl_json("get", "pvc", "roar-db-data", "-n", NS)
        assert claim["status"]["phase"] == "Bound" and claim["spec"]["volumeName"] == "roar-db-data"
        (db,) = pods(kube_cluster, NS, "app.kubernetes.io/component=db")
        (owner,) = db["status"]["initContainerStatuses"]
        assert owner["name"] == "data-owner" and owner["state"]["terminated"]["exitCode"] == 0
        assert owner["image"] == db["spec"]["containers"][0]["image"]
        sql(kube_cluster, NS, "roar-db-0", "db", WOODY)
        wait_for(lambda: SIXTH_AGENT["NAME"] in agent_names(BASE), what="the sixth row", timeout=5,
                 interval=0.1)  # fmt: skip
        kube_cluster.kubectl("delete", "pod", "-n", NS, "roar-db-0", "--wait=true")
        wait_rollout(kube_cluster, NS, "statefulset/roar-db")
        wait_serving_steadily(f"{BASE}/roar/api/v1/registry", what="web ready again")
        assert agent_names(BASE) == [*SEED_NAMES, SIXTH_AGENT["NAME"]]
        assert (data / "registry").is_dir()  # the database's files are on the node's disk
    finally:
        kube_cluster.kubectl("delete", "-k", str(overlay), "--wait=true", "--timeout=180s",
                             check=False, timeout=240)  # fmt: skip
        shutil.rmtree(data, ignore_errors=True)
        if made_parent:
            shutil.rmtree(data.parent, ignore_errors=True)


def test_one_pod_overlay_without_a_volume_loses_the_row(
    kube_cluster: KubeCluster, node_images: None, kustomize_tree: Path, dev: Path
) -> None:
    """Lab 6's contrast: web and db in one pod with the data on an emptyDir; deleting the pod
    loses the sixth row (the dev overlay's claim kept it, above)."""
    ns = "roar-one-pod"
    overlay = kustomize_tree / "overlays" / "one-pod"
    real_namespace(kube_cluster, ns)
    try:
        kube_cluster.kubectl("apply", "-k", str(overlay))
        wait_rollout(kube_cluster, ns, "deployment/roar-web")
        (pod,) = live_pods(kube_cluster, ns, WEB_PODS)
        # No NodePort in this overlay: the test talks to the pod's address on the test bridge.
        url = pod_url(pod)
        sql(kube_cluster, ns, pod["metadata"]["name"], "db", WOODY)
        wait_for(lambda: SIXTH_AGENT["NAME"] in agent_names(url), what="the sixth row", timeout=5,
                 interval=0.1)  # fmt: skip
        kube_cluster.kubectl("delete", "pod", "-n", ns, pod["metadata"]["name"], "--wait=true")
        wait_rollout(kube_cluster, ns, "deployment/roar-web")
        (new,) = live_pods(kube_cluster, ns, WEB_PODS)
        assert agent_names(pod_url(new)) == SEED_NAMES
    finally:
        kube_cluster.kubectl("delete", "-k", str(overlay), "--wait=true", "--timeout=180s",
                             check=False, timeout=240)  # fmt: skip
