"""Lab 9 on a real control plane: the operator, as its own ServiceAccount with the shipped RBAC,
turns the workshop's RoarApp into the whole app, follows a scale from 5 to 3, repairs a deleted
Service, and its children go with the RoarApp (garbage collection by kube-controller-manager).

Then what kmock cannot show, because only the API server canonicalises and skips no-op applies:
an unchanged RoarApp written with non-canonical quantities costs no write, no Event and no
counted write over resyncs and a restart; deleted children come back; NetworkPolicies go when
turned off."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubekit import KubeCluster, wait_for

pytestmark = pytest.mark.cluster

ROOT = Path(__file__).resolve().parents[2]
OPERATOR = ROOT / "deploy" / "operator"
APP = "roarapp-sample"
#: Seconds between the operator's resyncs here (30 by default): short, to see several quickly.
RESYNC = 3


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


@dataclass
class OperatorProcess:
    """`roar operator run` in a subprocess, as the namespace's ServiceAccount; restartable."""

    argv: list[str]
    env: dict[str, str]
    log: Path
    proc: subprocess.Popen[bytes] | None = None
    metrics_port: int = 0

    def start(self) -> None:
        self.metrics_port = _free_port()
        env = self.env | {"ROAR_OPERATOR_METRICS_PORT": str(self.metrics_port)}
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(self.argv, env=env, stdout=log, stderr=subprocess.STDOUT)

    def stop(self) -> None:
        if self.proc is None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def poll(self) -> int | None:
        assert self.proc is not None
        return self.proc.poll()

    def metric(self, name: str, **labels: str) -> float:
        """The sum of one metric's samples that carry ``labels`` (0 before it is served)."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics") as r:
                text = r.read().decode()
        except OSError:
            return 0.0
        total = 0.0
        for line in text.splitlines():
            if line.startswith(name + "{") or line.startswith(name + " "):
                head, _, value = line.rpartition(" ")
                if all(f'{k}="{v}"' in head for k, v in labels.items()):
                    total += float(value)
        return total


@pytest.fixture
def operator(
    kube_cluster: KubeCluster, namespace: str, tmp_path: Path, output_dir: Path
) -> Iterator[OperatorProcess]:
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
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ROAR_", "KUBECONFIG"))}
    env |= {
        "ROAR_OPERATOR_LIVENESS_ENDPOINT": f"http://127.0.0.1:{_free_port()}/healthz",
        "ROAR_OPERATOR_RESYNC_SECONDS": str(RESYNC),
    }
    op = OperatorProcess(
        [sys.executable, "-m", "roar.operator", "--kubeconfig", str(kubeconfig),
         "-n", namespace, "--verbose"],
        env, output_dir / f"operator-{namespace}.log",
    )  # fmt: skip
    op.start()
    try:
        yield op
    finally:
        op.stop()


def _get(cluster: KubeCluster, namespace: str, *what: str) -> dict[str, Any] | None:
    res = cluster.kubectl("get", *what, "-n", namespace, "-o", "json", check=False)
    return json.loads(res.stdout) if res.returncode == 0 else None


def _present(cluster: KubeCluster, namespace: str, objects: list[tuple[str, str]]) -> int:
    """How many of ``objects`` (kind, name) exist, in one request."""
    names = [f"{kind}/{name}" for kind, name in objects]
    res = cluster.kubectl("get", *names, "-n", namespace, "--ignore-not-found", "-o", "name")
    return len(res.stdout.split())


def _ready_with(cluster: KubeCluster, namespace: str, pods: int, app_name: str = APP) -> bool:
    app = _get(cluster, namespace, "roarapp", app_name) or {}
    status = app.get("status", {})
    ready = any(
        c["type"] == "Ready" and c["status"] == "True" for c in status.get("conditions", [])
    )
    return ready and len(status.get("podNames", [])) == pods


def test_lab9_on_a_real_control_plane(
    kube_cluster: KubeCluster, namespace: str, operator: OperatorProcess
) -> None:
    k = kube_cluster.kubectl
    k("apply", "-n", namespace, "-f", str(OPERATOR / "samples" / "roarapp-sample.yaml"))

    children = [
        ("deployment", f"{APP}-web"), ("statefulset", f"{APP}-db"),
        ("service", f"{APP}-web"), ("service", f"{APP}-mysql"),
        ("service", f"{APP}-db-headless"), ("secret", f"{APP}-db-credentials"),
        ("configmap", f"{APP}-db-config"), ("serviceaccount", f"{APP}-web"),
        ("poddisruptionbudget", f"{APP}-web"), ("networkpolicy", f"{APP}-default-deny"),
        ("networkpolicy", f"{APP}-web-ingress"), ("networkpolicy", f"{APP}-db-ingress"),
    ]  # fmt: skip
    wait_for(lambda: _present(kube_cluster, namespace, children) == len(children),
             what="every child of the RoarApp", timeout=90)  # fmt: skip
    assert operator.poll() is None, "the operator exited"
    wait_for(lambda: _ready_with(kube_cluster, namespace, 5),
             what="status Ready with 5 podNames", timeout=180)  # fmt: skip
    app = _get(kube_cluster, namespace, "roarapp", APP)
    assert app is not None
    uid = app["metadata"]["uid"]
    dep = _get(kube_cluster, namespace, "deployment", f"{APP}-web")
    assert dep is not None and dep["metadata"]["ownerReferences"][0]["uid"] == uid
    # The version serving: the ready pods' app.kubernetes.io/version (the image tag).
    assert app["status"]["version"] == dep["metadata"]["labels"]["app.kubernetes.io/version"]
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
    wait_for(lambda: _present(kube_cluster, namespace, children) == 0,
             what="children garbage-collected", timeout=180)  # fmt: skip
    pvcs = _get(kube_cluster, namespace, "pvc") or {"items": []}
    assert [p["metadata"]["name"] for p in pvcs["items"]] == [f"data-{APP}-db-0"]


QUANT = "quant"
#: Every quantity in a form the API server rewrites ("0.5" is stored as "500m", "131072Ki" as
#: "128Mi", "1000m" as "1"): a client-side comparison with the stored object never matches.
NON_CANONICAL: dict[str, Any] = {
    "replicas": 1,
    "resources": {"requests": {"cpu": "0.5", "memory": "131072Ki"},
                  "limits": {"cpu": "1000m", "memory": "268435456"}},
    "database": {"managed": {
        "storage": {"size": "1073741824"},
        "resources": {"requests": {"cpu": "0.1", "memory": "262144Ki"},
                      "limits": {"cpu": "1000m", "memory": "0.5Gi"}},
    }},
}  # fmt: skip
CHILD_KINDS = ",".join((
    "deployment", "statefulset", "service", "networkpolicy", "poddisruptionbudget", "configmap",
    "secret", "serviceaccount",
))  # fmt: skip


@dataclass(frozen=True)
class Snapshot:
    """What a write would change: each child's resourceVersion, the Events about the app and
    its workloads, and the operator's count of child writes."""

    versions: dict[tuple[str, str], str]
    events: dict[str, int]
    writes: float


def _snapshot(cluster: KubeCluster, namespace: str, op: OperatorProcess) -> Snapshot:
    selector = f"app.kubernetes.io/instance={QUANT},app.kubernetes.io/managed-by=roar-operator"
    children = cluster.kubectl_json("get", CHILD_KINDS, "-n", namespace, "-l", selector)
    events = cluster.kubectl_json("get", "events", "-n", namespace)
    return Snapshot(
        versions={(c["kind"], c["metadata"]["name"]): c["metadata"]["resourceVersion"]
                  for c in children["items"]},
        events={e["metadata"]["name"]: e.get("count") or 1 for e in events["items"]
                if e["involvedObject"]["kind"] in ("RoarApp", "Deployment", "StatefulSet")},
        writes=op.metric("roar_operator_child_writes_total"),
    )  # fmt: skip


def _resyncs(op: OperatorProcess, count: int) -> None:
    """Wait until the operator has finished ``count`` more reconciles of the (one) app."""

    def ok() -> float:
        return op.metric("roar_operator_reconciles_total", result="ok")

    done = ok()
    wait_for(lambda: ok() >= done + count, what=f"{count} more reconciles",
             timeout=RESYNC * count + 30, interval=0.3)  # fmt: skip


def _settled(cluster: KubeCluster, namespace: str, op: OperatorProcess) -> Snapshot:
    """A snapshot once the controllers are done writing status (a Ready app goes quiet)."""
    before = _snapshot(cluster, namespace, op)
    for _ in range(10):
        _resyncs(op, 1)
        after = _snapshot(cluster, namespace, op)
        if after == before:
            return after
        before, last = after, before
    raise AssertionError(f"the children never stopped changing: {_diff(last, after)}")


def _diff(a: Snapshot, b: Snapshot) -> str:
    changed = sorted(f"{k}/{n}" for (k, n), v in b.versions.items() if a.versions.get((k, n)) != v)
    events = sorted(set(b.events.items()) - set(a.events.items()))
    return f"written {changed}, new Events {events}, child writes {a.writes} -> {b.writes}"


def _uid(cluster: KubeCluster, namespace: str, kind: str, name: str) -> str | None:
    obj = _get(cluster, namespace, kind, name)
    return obj["metadata"]["uid"] if obj else None


def _version(cluster: KubeCluster, namespace: str) -> str | None:
    app = _get(cluster, namespace, "roarapp", QUANT) or {}
    return app.get("status", {}).get("version")


def test_an_unchanged_app_costs_no_write_and_deleted_children_come_back(
    kube_cluster: KubeCluster, namespace: str, operator: OperatorProcess
) -> None:
    k = kube_cluster.kubectl
    app = {"apiVersion": "app.example.com/v1alpha1", "kind": "RoarApp",
           "metadata": {"name": QUANT}, "spec": NON_CANONICAL}  # fmt: skip
    k("apply", "-n", namespace, "-f", "-", input=json.dumps(app))
    wait_for(lambda: _ready_with(kube_cluster, namespace, 1, QUANT), what="the app Ready",
             timeout=120)  # fmt: skip
    dep = _get(kube_cluster, namespace, "deployment", f"{QUANT}-web") or {}
    stored = dep["spec"]["template"]["spec"]["containers"][0]["resources"]
    assert stored["requests"] == {"cpu": "500m", "memory": "128Mi"}, "not canonicalised?"

    # Two resyncs: every child applied twice more; the API server finds nothing to write.
    quiet = _settled(kube_cluster, namespace, operator)
    assert quiet.writes > 0 and quiet.events, "the first reconcile created and said so"
    _resyncs(operator, 2)
    now = _snapshot(kube_cluster, namespace, operator)
    assert now == quiet, _diff(quiet, now)

    # A restart: a new process that has seen nothing reads each child once, then applies it.
    operator.stop()
    operator.start()
    _resyncs(operator, 2)
    after = _snapshot(kube_cluster, namespace, operator)
    assert (after.versions, after.events, after.writes) == (quiet.versions, quiet.events, 0), _diff(
        quiet, after
    )

    # Drift: deleted children are back (new objects), and those writes are counted and told.
    gone = [("service", f"{QUANT}-web"), ("deployment", f"{QUANT}-web"),
            ("statefulset", f"{QUANT}-db"), ("networkpolicy", f"{QUANT}-default-deny")]  # fmt: skip
    uids = {c: _uid(kube_cluster, namespace, *c) for c in gone}
    k("delete", "-n", namespace, *(f"{kind}/{name}" for kind, name in gone))
    wait_for(lambda: all(_uid(kube_cluster, namespace, *c) not in (None, uids[c]) for c in gone),
             what="every deleted child recreated", timeout=60)  # fmt: skip
    wait_for(lambda: operator.metric("roar_operator_child_writes_total", action="created") == 4,
             what="four writes counted", timeout=30)  # fmt: skip

    # The claim template cannot change: the API server refuses the edit, saying why.
    bigger = {"spec": {"database": {"managed": {"storage": {"size": "2Gi"}}}}}
    resize = k("patch", "roarapp", QUANT, "-n", namespace, "--type=merge", "-p",
               json.dumps(bigger), check=False)  # fmt: skip
    assert resize.returncode != 0 and "fixed once the database exists" in resize.stderr

    # A new version rolls out with the Deployment's strategy; the status and an Event say so.
    k("patch", "roarapp", QUANT, "-n", namespace, "--type=merge",
      "-p", '{"spec":{"image":{"tag":"0.2.1"}}}')  # fmt: skip
    wait_for(lambda: _version(kube_cluster, namespace) == "0.2.1", what="0.2.1 serving",
             timeout=90)  # fmt: skip
    # kopf posts the Event after the status patch, asynchronously: wait for it, briefly.
    wait_for(lambda: any(e["reason"] == "VersionServing" and "0.2.1" in e["message"]
                         for e in kube_cluster.kubectl_json("get", "events", "-n",
                                                            namespace)["items"]),
             what="a VersionServing Event", timeout=30)  # fmt: skip

    # NetworkPolicies turned off are deleted (the one delete the operator's RBAC grants).
    k("patch", "roarapp", QUANT, "-n", namespace, "--type=merge",
      "-p", '{"spec":{"networkPolicies":{"enabled":false}}}')  # fmt: skip
    wait_for(lambda: not (_get(kube_cluster, namespace, "networkpolicy") or {}).get("items"),
             what="the NetworkPolicies deleted", timeout=60)  # fmt: skip
    assert operator.poll() is None, "the operator exited"


BACKED = "backed"


def test_backup_cronjob_and_pvc_and_the_crd_refuses_a_bad_one(
    kube_cluster: KubeCluster, namespace: str, operator: OperatorProcess
) -> None:
    k = kube_cluster.kubectl

    def roarapp(spec: dict[str, Any], name: str = BACKED) -> str:
        return json.dumps({"apiVersion": "app.example.com/v1alpha1", "kind": "RoarApp",
                           "metadata": {"name": name}, "spec": spec})  # fmt: skip

    # The API server refuses a bad backup, naming the field.
    for spec, field in (
        ({"backup": {"schedule": "daily"}}, "spec.backup.schedule"),
        ({"backup": {"schedule": "@daily", "retention": 0}}, "spec.backup.retention"),
        ({"backup": {"schedule": "@daily"},
          "database": {"external": {"secretName": "ext"}}}, "spec.backup"),
    ):  # fmt: skip
        bad = k("apply", "-n", namespace, "-f", "-", input=roarapp(spec, "bad"), check=False)
        assert bad.returncode != 0 and field in bad.stderr, bad.stderr

    backup = {"schedule": "0 3 * * *", "retention": 2, "storage": {"size": "64Mi"}}
    k("apply", "-n", namespace, "-f", "-", input=roarapp({"replicas": 1, "backup": backup}))
    name = f"{BACKED}-backup"
    wait_for(lambda: _present(kube_cluster, namespace, [("cronjob", name), ("pvc", name)]) == 2,
             what="the backup CronJob and PVC", timeout=60)  # fmt: skip
    cron = _get(kube_cluster, namespace, "cronjob", name) or {}
    assert cron["spec"]["schedule"] == "0 3 * * *" and cron["spec"]["timeZone"] == "Etc/UTC"
    app_uid = _uid(kube_cluster, namespace, "roarapp", BACKED)
    assert cron["metadata"]["ownerReferences"][0]["uid"] == app_uid
    for kind in ("cronjob", "pvc"):
        obj = _get(kube_cluster, namespace, kind, name, "--show-managed-fields") or {}
        managers = {(m["manager"], m["operation"]) for m in obj["metadata"]["managedFields"]}
        assert ("roar-operator", "Apply") in managers, managers  # server-side applied
    printed = k("get", "roarapp", BACKED, "-n", namespace, "-o", "wide").stdout
    assert "LAST BACKUP" in printed

    # Removing backup deletes the CronJob (the operator's RBAC grants that) and keeps the PVC.
    k("patch", "roarapp", BACKED, "-n", namespace, "--type=json",
      "-p", '[{"op":"remove","path":"/spec/backup"}]')  # fmt: skip
    wait_for(lambda: _get(kube_cluster, namespace, "cronjob", name) is None,
             what="the backup CronJob deleted", timeout=30)  # fmt: skip
    assert _get(kube_cluster, namespace, "pvc", name) is not None, "the dumps' PVC must stay"
    assert operator.poll() is None, "the operator exited"
