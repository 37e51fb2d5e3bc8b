"""Flux's GitOps loop, for real: source-controller and kustomize-controller (built from their Go
modules by fluxkit, run out of cluster against the test API server) reconcile ROAR's dev overlay
from a git repository served over HTTP on loopback by Debian's `git http-backend`.

The repository is what docs/gitops.md has a learner push: this working tree's deploy/, with the
dev credentials committed (`git add -f`). deploy/gitops/flux's GitRepository `roar` and the
Kustomizations roar-dev-db and roar-dev-web are applied server-side as committed, but for the
GitRepository's URL (the loopback server) and interval (5 s), patched by kustomize here.

Then, against the real controllers: the overlay reaches the cluster, web only after db is Ready
(dependsOn); a commit that scales web and a tag bump by tools/release/set-image reach the
cluster, and `git revert` rolls each back; a change made by hand in the cluster is put back.
With the cluster's real node the pods run ROAR's images and serve through the NodePort; with
kwok nodes only, the API objects and the readiness kwok reports are what is checked.

The tests build on each other, in file order, on one lab (repository, controllers, namespace).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from fluxkit import RUNTIME_NAMESPACE, Flux, running_flux
from kubekit import TOOLS, KubeCluster, is_ready, realnode
from nodekit import (
    BASE,
    DB,
    WEB,
    agent_names,
    assert_on_real_node_and_ready,
    live_pods,
)

from roar import __version__
from roar.db.schema import SEED_AGENTS
from support.gitserver import GitServer, git_server
from support.wait import eventually

# A cold run builds both controllers inside the first test's set-up.
pytestmark = [pytest.mark.cluster, pytest.mark.timeout(1500)]

REPO = Path(__file__).resolve().parents[2]
FLUX_OBJECTS = REPO / "deploy" / "gitops" / "flux"
SET_IMAGE = REPO / "tools" / "release" / "set-image"
OVERLAY = Path("deploy/kustomize/overlays/dev")
CREDENTIALS = Path("deploy/kustomize/base/db-credentials.env")
NS = "roar-dev"
WEB_PODS = "app.kubernetes.io/component=web"
KUSTOMIZATIONS = ("roar-dev-db", "roar-dev-web")
INTERVAL = "5s"
MANAGER = "roar-flux-loop"
REQUESTED_AT = "reconcile.fluxcd.io/requestedAt"
BUMPED = f"{WEB.rsplit(':', 1)[0]}:{__version__}-flux"  # the tag bump's image
SEED_NAMES = [a["NAME"] for a in SEED_AGENTS]
Obj = dict[str, Any]

# Commits and the release tool's commit: a fixed identity, no user or system git config.
GIT_ENV = {
    "GIT_CONFIG_GLOBAL": "/dev/null",
    "GIT_CONFIG_NOSYSTEM": "1",
    **{f"GIT_{who}_NAME": "ROAR learner" for who in ("AUTHOR", "COMMITTER")},
    **{f"GIT_{who}_EMAIL": "learner@roar.test" for who in ("AUTHOR", "COMMITTER")},
}


def _conditions(obj: Obj) -> str:
    return "; ".join(f"{c['type']}={c['status']} {c.get('reason', '')}: {c.get('message', '')}"
                     for c in obj.get("status", {}).get("conditions", []))  # fmt: skip


def _ready_since(obj: Obj) -> str:
    """When ``obj``'s Ready condition last changed (RFC 3339, UTC: compares as text)."""
    ready = [c for c in obj["status"]["conditions"] if c["type"] == "Ready"]
    assert ready, f"{obj['kind']} {obj['metadata']['name']} has no Ready condition"
    return str(ready[0]["lastTransitionTime"])


def rolled_out(obj: Obj) -> bool:
    """A Deployment or StatefulSet whose every wanted pod is updated and ready (what kstatus
    calls Current)."""
    spec, status = obj["spec"], obj.get("status", {})
    want = spec.get("replicas", 1)
    counts = [status.get(k, 0) for k in ("replicas", "updatedReplicas", "readyReplicas")]
    current = status.get("observedGeneration", 0) >= obj["metadata"]["generation"]
    return current and counts == [want] * 3


def images(obj: Obj) -> dict[str, str]:
    """Container name -> image, init containers included."""
    pod = obj["spec"]["template"]["spec"]
    return {c["name"]: c["image"] for c in [*pod.get("initContainers", []), *pod["containers"]]}


@dataclass
class Lab:
    cluster: KubeCluster
    server: GitServer
    clone: Path
    flux: Flux
    real_node: bool

    @property
    def within(self) -> float:
        """How long a step may take: pods on the real node start for real."""
        return 300 if self.real_node else 90

    def git(self, *args: str) -> str:
        result = subprocess.run(["git", "-C", str(self.clone), *args], capture_output=True,
                                text=True, timeout=120, env=git_env())  # fmt: skip
        assert result.returncode == 0, f"git {' '.join(args)}: {result.stderr}"
        return result.stdout.strip()

    def push(self) -> str:
        """Push main; the commit pushed."""
        self.git("push", "--quiet", "origin", "main")
        return self.git("rev-parse", "HEAD")

    def get(self, kind: str, name: str, namespace: str = NS) -> Obj:
        return dict(self.cluster.kubectl_json("get", kind, name, "-n", namespace))

    def flux_objects(self) -> dict[str, Obj]:
        found = self.cluster.kubectl_json("get", "gitrepositories,kustomizations", "-n",
                                          RUNTIME_NAMESPACE)  # fmt: skip
        return {f"{o['kind']}/{o['metadata']['name']}": o for o in found["items"]}

    def request_reconcile(self, kind: str, name: str) -> str:
        """What `flux reconcile` does: a new requestedAt annotation; its value."""
        stamp = datetime.now(UTC).isoformat()
        self.cluster.kubectl("annotate", "--overwrite", "-n", RUNTIME_NAMESPACE, f"{kind}/{name}",
                             f"{REQUESTED_AT}={stamp}")  # fmt: skip
        return stamp

    def wait(self, probe: Callable[[], Any], what: str, within: float | None = None) -> Any:
        return eventually(probe, what=what, within=within or self.within, every=1)

    def wait_applied(self, commit: str) -> dict[str, Obj]:
        """Both Kustomizations Ready with ``commit`` applied; the Flux objects then."""
        revision = f"main@sha1:{commit}"

        def applied() -> dict[str, Obj] | None:
            objs = self.flux_objects()
            done = all(
                is_ready(objs.get(f"Kustomization/{k}", {}))
                and objs[f"Kustomization/{k}"]["status"].get("lastAppliedRevision") == revision
                for k in KUSTOMIZATIONS
            )
            return objs if done else None

        return dict(self.wait(applied, f"roar-dev-db and roar-dev-web Ready at {revision}"))

    def wait_web(self, check: Callable[[Obj], bool], what: str) -> Obj:
        """The Deployment roar-web once ``check`` holds and it has rolled out."""

        def probe() -> Obj | None:
            dep = self.get("deployment", "roar-web")
            return dep if check(dep) and rolled_out(dep) else None

        return dict(self.wait(probe, f"Deployment roar-web {what}, rolled out"))

    def serves(self, image: str, replicas: int) -> None:
        """On the real node: ``replicas`` ready web pods running ``image``, and ROAR's agents
        through the NodePort."""

        def pods_ready() -> bool:
            pods = live_pods(self.cluster, NS, WEB_PODS)
            return len(pods) == replicas and all(is_ready(p) for p in pods)

        self.wait(pods_ready, f"{replicas} web pods ready")
        for pod in live_pods(self.cluster, NS, WEB_PODS):
            assert_on_real_node_and_ready(pod)
            assert {c["image"] for c in pod["spec"]["containers"]} == {image}
        self.wait(lambda: agent_names(BASE) == SEED_NAMES, f"ROAR's agents on {BASE}", within=60)

    def report(self) -> str:
        """What the controllers saw: conditions, revisions, workloads, logs, git requests."""
        lines = ["--- Flux objects:"]
        try:
            for key, obj in self.flux_objects().items():
                status = obj.get("status", {})
                revision = status.get("lastAppliedRevision") or status.get("artifact", {}).get(
                    "revision"
                )
                lines.append(f"{key} revision={revision} {_conditions(obj)}")
            lines.append("--- roar-dev:")
            lines.append(self.cluster.kubectl("get", "deployments,statefulsets,pods", "-n", NS,
                                              "-o", "wide", check=False).stdout)  # fmt: skip
        except AssertionError as err:
            lines.append(f"(kubectl failed: {err})")
        lines.append("--- git server, last requests:")
        lines += self.server.requests[-15:]
        lines.append(self.flux.logs())
        return "\n".join(lines)

    @contextmanager
    def explained(self) -> Iterator[None]:
        """A failure says what the controllers saw."""
        try:
            yield
        except AssertionError as err:
            raise AssertionError(f"{err}\n\n{self.report()}") from err


def git_env() -> dict[str, str]:
    return dict(os.environ, **GIT_ENV)


def _lab_repository(server: GitServer, clone: Path) -> Path:
    """The learner's repository: deploy/ of this tree and the committed dev credentials, pushed
    to the loopback server (docs/gitops.md, "Before you start")."""
    server.create("roar.git")
    shutil.copytree(REPO / "deploy", clone / "deploy",
                    ignore=shutil.ignore_patterns("*.env", "__pycache__"))  # fmt: skip
    shutil.copy(REPO / ".gitignore", clone / ".gitignore")
    (clone / CREDENTIALS).write_text(
        f"MYSQL_PASSWORD={secrets.token_hex(16)}\nMYSQL_ROOT_PASSWORD={secrets.token_hex(16)}\n"
    )
    for args in (["init", "--quiet", "--initial-branch=main", str(clone)],
                 ["-C", str(clone), "add", "--all"],
                 ["-C", str(clone), "add", "--force", str(CREDENTIALS)],
                 ["-C", str(clone), "commit", "--quiet", "-m", "ROAR's manifests, lab credentials"],
                 ["-C", str(clone), "remote", "add", "origin", server.url("roar.git")],
                 ["-C", str(clone), "push", "--quiet", "origin", "main"]):  # fmt: skip
        done = subprocess.run(["git", *args], capture_output=True, text=True, timeout=120,
                              env=git_env())  # fmt: skip
        assert done.returncode == 0, f"git {' '.join(args)}: {done.stderr}\n{server.requests}"
    return clone


def _flux_kustomization(target: Path, url: str) -> Path:
    """deploy/gitops/flux's source and roar-dev objects as committed, with the loopback URL and
    a short interval patched in (the committed files keep their placeholder URL)."""
    target.mkdir(parents=True)
    for name in ("source.yaml", "roar-dev.yaml"):
        shutil.copy(FLUX_OBJECTS / name, target / name)
    patch = [{"op": "replace", "path": "/spec/url", "value": url},
             {"op": "replace", "path": "/spec/interval", "value": INTERVAL}]  # fmt: skip
    kustomization = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": ["source.yaml", "roar-dev.yaml"],
        "patches": [
            {"target": {"kind": "GitRepository", "name": "roar"}, "patch": json.dumps(patch)}
        ],
    }
    (target / "kustomization.yaml").write_text(yaml.safe_dump(kustomization, sort_keys=False))
    return target


def _gone(cluster: KubeCluster, namespace: str) -> None:
    """``namespace`` deleted (if it exists) and waited for: a terminating one refuses objects."""
    cluster.kubectl("delete", "namespace", namespace, "--ignore-not-found", "--wait=true",
                    "--timeout=180s", timeout=240)  # fmt: skip


def _namespace_for_the_real_node(cluster: KubeCluster) -> None:
    """A fresh roar-dev whose pods go to the real node (nodekit.real_namespace's annotations),
    set by this module's field manager: Flux takes over and drops whatever a manager named
    `kubectl...` set on an object it applies (its drift correction), `kubectl annotate` too."""
    _gone(cluster, NS)
    metadata = {"name": NS, "annotations": realnode.namespace_annotations()}
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": metadata}
    cluster.kubectl("apply", "--server-side", f"--field-manager={MANAGER}", "-f", "-",
                    input=json.dumps(namespace))  # fmt: skip
    eventually(lambda: cluster.kubectl("get", "serviceaccount", "default", "-n", NS,
                                       check=False).returncode == 0,
               what=f"default ServiceAccount in {NS}", within=60)  # fmt: skip


def _load_bumped_image(cluster: KubeCluster, request: pytest.FixtureRequest) -> None:
    """The real node gets the web image under the tag bump's name too (nothing is pulled)."""
    request.getfixturevalue("node_images")
    built = request.getfixturevalue("images")
    subprocess.run(["podman", "tag", built.web_v1, BUMPED], check=True, capture_output=True)
    load = subprocess.run([str(TOOLS / "cluster.py"), "load", "--dir", str(cluster.state_dir),
                           BUMPED], capture_output=True, text=True)  # fmt: skip
    assert load.returncode == 0, f"loading {BUMPED} failed:\n{load.stderr[-4000:]}"


def _remove_flux_objects(cluster: KubeCluster) -> None:
    """The Kustomizations (web first) and the GitRepository deleted while the controllers run:
    their finalizers prune what they applied. Any left (a controller died) lose their
    finalizers, so that nothing waits on them."""
    refs = [*(f"kustomization/{k}" for k in reversed(KUSTOMIZATIONS)), "gitrepository/roar"]
    cluster.kubectl("delete", "-n", RUNTIME_NAMESPACE, *refs, "--ignore-not-found",
                    "--wait=true", "--timeout=90s", check=False, timeout=120)  # fmt: skip
    for ref in refs:
        cluster.kubectl("patch", "-n", RUNTIME_NAMESPACE, ref, "--type=merge",
                        "-p", '{"metadata":{"finalizers":null}}', check=False)  # fmt: skip


@pytest.fixture(scope="module")
def lab(
    kube_cluster: KubeCluster, tmp_path_factory: pytest.TempPathFactory,
    request: pytest.FixtureRequest,
) -> Iterator[Lab]:  # fmt: skip
    work = tmp_path_factory.mktemp("flux-loop")
    real = kube_cluster.kubectl("get", "node", realnode.NODE, check=False).returncode == 0
    if real:
        _load_bumped_image(kube_cluster, request)
        _namespace_for_the_real_node(kube_cluster)
    else:
        _gone(kube_cluster, NS)
    # flux-system is left in place at the end: test_gitops_objects applies into it and deletes
    # it (without waiting, so it may be terminating here if that module ran first).
    phase = kube_cluster.kubectl("get", "namespace", RUNTIME_NAMESPACE, "-o",
                                 "jsonpath={.status.phase}", check=False).stdout  # fmt: skip
    if phase == "Terminating":
        _gone(kube_cluster, RUNTIME_NAMESPACE)
    if phase != "Active":
        kube_cluster.kubectl("create", "namespace", RUNTIME_NAMESPACE)
    with (
        git_server(work / "git") as server,
        running_flux(kube_cluster, work / "flux", requeue_dependency="2s") as flux,
    ):
        lab = Lab(kube_cluster, server, _lab_repository(server, work / "clone"), flux, real)
        objects = _flux_kustomization(work / "objects", server.url("roar.git"))
        try:
            with lab.explained():
                kube_cluster.kubectl("apply", "--server-side", f"--field-manager={MANAGER}",
                                     "--validate=strict", "-k", str(objects))  # fmt: skip
            yield lab
        finally:
            _remove_flux_objects(kube_cluster)
    # Waited for: the next modules apply the dev overlay into a fresh roar-dev.
    _gone(kube_cluster, NS)


def test_the_dev_overlay_reaches_the_cluster_db_first_then_web(lab: Lab) -> None:
    with lab.explained():
        objs = lab.wait_applied(lab.git("rev-parse", "HEAD"))
        lab.get("namespace", NS, namespace="")
        sts = lab.get("statefulset", "roar-db")
        assert rolled_out(sts) and sts["status"]["readyReplicas"] == 1, sts.get("status")
        dep = lab.wait_web(lambda d: d["spec"]["replicas"] == 1, "with 1 replica")
        assert images(dep) == {"migrate": WEB, "web": WEB}
        # dependsOn and db's health check: web was created only once roar-dev-db was Ready,
        # which it was only once the database pod was.
        created = dep["metadata"]["creationTimestamp"]
        db_ready = _ready_since(objs["Kustomization/roar-dev-db"])
        pod_ready = _ready_since(lab.get("pod", "roar-db-0"))
        assert pod_ready <= db_ready <= created, (
            f"pod roar-db-0 Ready at {pod_ready}, Kustomization roar-dev-db Ready at {db_ready}, "
            f"Deployment roar-web created at {created}"
        )
        events = lab.cluster.kubectl_json(
            "get", "events", "-n", RUNTIME_NAMESPACE, "--field-selector",
            "involvedObject.kind=Kustomization,involvedObject.name=roar-dev-web",
        )["items"]  # fmt: skip
        waited = [e["message"] for e in events if e["reason"] == "DependencyNotReady"]
        assert waited and "Dependencies do not meet ready condition" in waited[0], [
            (e["reason"], e["message"]) for e in events
        ]
        if lab.real_node:
            lab.serves(WEB, replicas=1)


def _replicas_in_git(lab: Lab) -> list[Obj]:
    overlay = yaml.safe_load((lab.clone / OVERLAY / "kustomization.yaml").read_text())
    return list(overlay["replicas"])


def test_a_commit_that_scales_web_reaches_the_cluster_and_git_revert_rolls_it_back(
    lab: Lab,
) -> None:
    with lab.explained():
        path = lab.clone / OVERLAY / "kustomization.yaml"
        assert _replicas_in_git(lab) == [{"name": "roar-web", "count": 1}]
        path.write_text(path.read_text().replace("    count: 1\n", "    count: 2\n"))
        assert _replicas_in_git(lab) == [{"name": "roar-web", "count": 2}]
        lab.git("commit", "--quiet", "--all", "-m", "dev: two web replicas")
        # No nudge: the GitRepository's interval finds the commit by itself.
        lab.wait_applied(lab.push())
        lab.wait_web(lambda d: d["spec"]["replicas"] == 2, "with 2 replicas")
        if lab.real_node:
            lab.serves(WEB, replicas=2)

        lab.git("revert", "--no-edit", "HEAD")
        assert _replicas_in_git(lab) == [{"name": "roar-web", "count": 1}]
        commit = lab.push()
        lab.request_reconcile("gitrepository", "roar")  # `flux reconcile source git roar`
        lab.wait_applied(commit)
        lab.wait_web(lambda d: d["spec"]["replicas"] == 1, "back to 1 replica")
        if lab.real_node:
            lab.serves(WEB, replicas=1)


def test_a_tag_bump_by_the_release_tool_reaches_the_cluster_and_git_revert_rolls_it_back(
    lab: Lab,
) -> None:
    with lab.explained():
        tag = BUMPED.rsplit(":", 1)[1]
        bump = subprocess.run(
            [sys.executable, str(SET_IMAGE), str(lab.clone / OVERLAY), f"roar-web:{tag}"],
            capture_output=True, text=True, timeout=300, env=git_env(),
        )  # fmt: skip
        assert bump.returncode == 0, bump.stderr
        assert f"release: roar-web {tag} in {OVERLAY}" in bump.stdout, bump.stdout
        assert lab.git("show", "--name-only", "--format=", "HEAD") == str(
            OVERLAY / "kustomization.yaml"
        )
        lab.wait_applied(lab.push())  # the interval finds it
        dep = lab.wait_web(lambda d: images(d)["web"] == BUMPED, f"running {BUMPED}")
        assert images(dep) == {"migrate": BUMPED, "web": BUMPED}
        assert set(images(lab.get("statefulset", "roar-db")).values()) == {DB}
        if lab.real_node:
            lab.serves(BUMPED, replicas=1)

        lab.git("revert", "--no-edit", "HEAD")
        commit = lab.push()
        lab.request_reconcile("gitrepository", "roar")
        lab.wait_applied(commit)
        dep = lab.wait_web(lambda d: images(d)["web"] == WEB, f"back on {WEB}")
        assert images(dep) == {"migrate": WEB, "web": WEB}
        if lab.real_node:
            lab.serves(WEB, replicas=1)


def test_a_change_by_hand_in_the_cluster_is_reverted(lab: Lab) -> None:
    with lab.explained():
        drifted = f"{WEB.rsplit(':', 1)[0]}:by-hand"
        lab.cluster.kubectl("scale", "-n", NS, "deployment/roar-web", "--replicas=3")
        lab.cluster.kubectl("set", "image", "-n", NS, "deployment/roar-web", f"web={drifted}")
        dep = lab.get("deployment", "roar-web")
        assert dep["spec"]["replicas"] == 3 and images(dep)["web"] == drifted

        # `flux reconcile kustomization roar-dev-web`, rather than waiting for its interval.
        stamp = lab.request_reconcile("kustomization", "roar-dev-web")
        lab.wait(lambda: lab.flux_objects()["Kustomization/roar-dev-web"]["status"].get(
            "lastHandledReconcileAt") == stamp, "roar-dev-web to handle the request")  # fmt: skip
        dep = lab.wait_web(lambda d: d["spec"]["replicas"] == 1 and images(d)["web"] == WEB,
                           f"back to 1 replica of {WEB}")  # fmt: skip
        assert images(dep) == {"migrate": WEB, "web": WEB}
        if lab.real_node:
            lab.serves(WEB, replicas=1)
