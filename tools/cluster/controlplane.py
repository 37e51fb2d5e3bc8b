"""`up` and `down` of the test cluster: etcd, kube-apiserver, kube-controller-manager,
kube-scheduler and kwok as local processes, the kwok nodes, and optionally a real node
(realnode.py). See docs/cluster.md."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import kwoknodes
import network
import pki as certs
import procs
import realnode

# Order matters for `down`: stop the clients first and etcd last.
COMPONENTS = ("kwok", "kube-scheduler", "kube-controller-manager", "kube-apiserver", "etcd")

# The default StorageClass. The scheduler keeps a pod whose PVC is unbound Pending, so
# StatefulSet volumeClaimTemplates need real binding: the in-tree hostPath provisioner
# (kube-controller-manager --enable-hostpath-provisioner) creates a PV per PVC, an empty directory
# under /tmp/hostpath_pv (which the real node mounts), and deletes it when the PVC goes.
STORAGE_CLASS = {
    "apiVersion": "storage.k8s.io/v1",
    "kind": "StorageClass",
    "metadata": {
        "name": "standard",
        "annotations": {"storageclass.kubernetes.io/is-default-class": "true"},
    },
    "provisioner": "kubernetes.io/host-path",
    "reclaimPolicy": "Delete",
    "volumeBindingMode": "Immediate",
    "allowVolumeExpansion": False,
}


def log(msg: str) -> None:
    print(f"[cluster] {msg}", file=sys.stderr, flush=True)


def kubectl(bin_dir: Path, kubeconfig: Path, *args: str, stdin: str | None = None) -> str:
    res = subprocess.run(
        [str(bin_dir / "kubectl"), "--kubeconfig", str(kubeconfig), *args],
        input=stdin, capture_output=True, text=True,
    )  # fmt: skip
    if res.returncode != 0:
        raise RuntimeError(f"kubectl {' '.join(args)} failed: {res.stderr.strip()}")
    return res.stdout


def _running(state: Path, bin_dir: Path, real_nodes: int) -> bool:
    """True when `up` with these settings already runs in this state dir."""
    if not (state / "cluster.json").exists():
        return False
    info = json.loads((state / "cluster.json").read_text())
    wanted = (*COMPONENTS, *(realnode.COMPONENTS if real_nodes else ()))
    running = procs.recorded(state, wanted)
    return (
        info.get("bin_dir") == str(bin_dir)
        and info.get("real_nodes", 0) == real_nodes
        and set(running) == set(wanted)
        and all(procs.alive(pid, started) for pid, started in running.values())
    )


def _start_etcd(state: Path, bin_dir: Path, ports: dict[str, int]) -> str:
    pki = state / "pki"
    url = f"https://127.0.0.1:{ports['etcd']}"
    peer = f"http://127.0.0.1:{ports['etcd-peer']}"
    procs.spawn("etcd", [
        str(bin_dir / "etcd"), "--name=roar", f"--data-dir={state / 'etcd'}",
        f"--listen-client-urls={url}", f"--advertise-client-urls={url}",
        f"--listen-peer-urls={peer}", f"--initial-advertise-peer-urls={peer}",
        f"--initial-cluster=roar={peer}",
        f"--cert-file={pki / 'etcd-server.crt'}", f"--key-file={pki / 'etcd-server.key'}",
        f"--trusted-ca-file={pki / 'ca.crt'}", "--client-cert-auth",
        # A throwaway test store: skip fsync-heavy durability, keep the log quiet.
        "--unsafe-no-fsync", "--log-level=warn", "--quota-backend-bytes=2147483648",
    ], state)  # fmt: skip
    procs.wait("etcd", lambda: procs.https_ok(f"{url}/health", pki,
                                              client="apiserver-etcd-client"), state)  # fmt: skip
    return url


def _apiserver_address_flags(real_nodes: int, certs_dir: Path) -> list[str]:
    if not real_nodes:
        # The endpoint reconciler refuses a loopback address, and no pod would reach it anyway:
        # the `kubernetes` Service keeps its ClusterIP but gets no endpoints.
        return ["--bind-address=127.0.0.1", "--advertise-address=127.0.0.1",
                "--endpoint-reconciler-type=none"]  # fmt: skip
    # Pods (the operator) reach the apiserver through the `kubernetes` Service, so it listens on
    # the node address (local to this machine, on the test bridge) and advertises it there.
    return [
        f"--bind-address={network.NODE_IP}", f"--advertise-address={network.NODE_IP}",
        "--endpoint-reconciler-type=lease",
        # `kubectl logs/exec` reach the kubelet at the node's InternalIP (no DNS for node names).
        "--kubelet-preferred-address-types=InternalIP,Hostname",
        # The aggregation layer (metrics.k8s.io) calls metrics-server at its endpoint directly.
        "--enable-aggregator-routing=true",
        f"--kubelet-certificate-authority={certs_dir}/ca.crt",
    ]  # fmt: skip


def _start_apiserver(
    state: Path, bin_dir: Path, ports: dict[str, int], etcd_url: str, real_nodes: int
) -> str:
    pki = state / "pki"
    host = network.NODE_IP if real_nodes else "127.0.0.1"
    server = f"https://{host}:{ports['apiserver']}"
    procs.spawn("kube-apiserver", [
        str(bin_dir / "kube-apiserver"), *_apiserver_address_flags(real_nodes, pki),
        f"--secure-port={ports['apiserver']}",
        f"--etcd-servers={etcd_url}", f"--etcd-cafile={pki / 'ca.crt'}",
        f"--etcd-certfile={pki / 'apiserver-etcd-client.crt'}",
        f"--etcd-keyfile={pki / 'apiserver-etcd-client.key'}",
        f"--tls-cert-file={pki / 'apiserver.crt'}",
        f"--tls-private-key-file={pki / 'apiserver.key'}",
        f"--client-ca-file={pki / 'ca.crt'}",
        f"--requestheader-client-ca-file={pki / 'front-proxy-ca.crt'}",
        "--requestheader-allowed-names=front-proxy-client",
        "--requestheader-username-headers=X-Remote-User",
        "--requestheader-group-headers=X-Remote-Group",
        "--requestheader-extra-headers-prefix=X-Remote-Extra-",
        f"--proxy-client-cert-file={pki / 'front-proxy-client.crt'}",
        f"--proxy-client-key-file={pki / 'front-proxy-client.key'}",
        f"--kubelet-client-certificate={pki / 'apiserver-kubelet-client.crt'}",
        f"--kubelet-client-key={pki / 'apiserver-kubelet-client.key'}",
        "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
        f"--service-account-key-file={pki / 'sa.pub'}",
        f"--service-account-signing-key-file={pki / 'sa.key'}",
        "--authorization-mode=Node,RBAC",
        # PodNodeSelector and PodTolerationRestriction: a namespace's annotations place its pods
        # on the real node or keep them off it (realnode.namespace_annotations).
        "--enable-admission-plugins=NodeRestriction,PodNodeSelector,PodTolerationRestriction",
        f"--service-cluster-ip-range={network.SERVICE_CIDR}", "--allow-privileged=true",
        "--profiling=false", "--v=1",
    ], state)  # fmt: skip
    procs.wait(
        "kube-apiserver /readyz",
        lambda: procs.https_ok(f"{server}/readyz", pki, client="admin"),
        state,
        timeout=120,
    )
    return server


def _start_controllers(state: Path, bin_dir: Path, ports: dict[str, int]) -> None:
    pki = state / "pki"
    kcm = state / "kube-controller-manager.kubeconfig"
    procs.spawn("kube-controller-manager", [
        str(bin_dir / "kube-controller-manager"), f"--kubeconfig={kcm}",
        f"--authentication-kubeconfig={kcm}", f"--authorization-kubeconfig={kcm}",
        "--bind-address=127.0.0.1", f"--secure-port={ports['kcm']}", "--leader-elect=false",
        "--use-service-account-credentials=true",
        f"--service-account-private-key-file={pki / 'sa.key'}",
        f"--root-ca-file={pki / 'ca.crt'}",
        f"--cluster-signing-cert-file={pki / 'ca.crt'}",
        f"--cluster-signing-key-file={pki / 'ca.key'}",
        f"--service-cluster-ip-range={network.SERVICE_CIDR}", "--allocate-node-cidrs=false",
        "--enable-hostpath-provisioner=true", "--controllers=*,bootstrapsigner,tokencleaner",
        # A test cluster's HPA reacts in seconds, not the production default's 15 s.
        "--horizontal-pod-autoscaler-sync-period=5s",
        "--profiling=false", "--v=1",
    ], state)  # fmt: skip
    sched = state / "kube-scheduler.kubeconfig"
    procs.spawn("kube-scheduler", [
        str(bin_dir / "kube-scheduler"), f"--kubeconfig={sched}",
        f"--authentication-kubeconfig={sched}", f"--authorization-kubeconfig={sched}",
        "--bind-address=127.0.0.1", f"--secure-port={ports['scheduler']}", "--leader-elect=false",
        "--profiling=false", "--v=1",
    ], state)  # fmt: skip
    procs.spawn("kwok", [
        str(bin_dir / "kwok"), f"--kubeconfig={state / 'kwok.kubeconfig'}",
        f"--config={bin_dir / 'kwok-stages.yaml'}", "--manage-all-nodes=false",
        f"--manage-nodes-with-annotation-selector={kwoknodes.KWOK_ANNOTATION}",
        "--node-lease-duration-seconds=40", f"--cidr={network.KWOK_POD_CIDR}",
    ], state)  # fmt: skip
    procs.wait("kube-controller-manager /healthz", lambda: procs.https_anon_ok(
        f"https://127.0.0.1:{ports['kcm']}/healthz"), state)  # fmt: skip
    procs.wait("kube-scheduler /healthz", lambda: procs.https_anon_ok(
        f"https://127.0.0.1:{ports['scheduler']}/healthz"), state)  # fmt: skip


def _ready_nodes(bin_dir: Path, kubeconfig: Path) -> int:
    items = json.loads(kubectl(bin_dir, kubeconfig, "get", "nodes", "-o", "json"))["items"]
    return sum(
        any(c["type"] == "Ready" and c["status"] == "True" for c in n["status"]["conditions"])
        for n in items
        if n.get("status", {}).get("conditions")
    )


def up(state: Path, bin_dir: Path, node_count: int, real_nodes: int = 0) -> Path:
    t0 = time.monotonic()
    kubeconfig = state / "kubeconfig"
    if _running(state, bin_dir, real_nodes):
        log(f"already running ({state})")
        return kubeconfig
    if (state / "cluster.json").exists():
        log("stale cluster state found; stopping it first")
    down(state, purge=False)
    if real_nodes > 1:
        raise RuntimeError("one real node per machine: --real-nodes 0 or 1")
    needed = (*COMPONENTS, "kubectl", *(("kubelet", "kube-proxy", "coredns", "pause")
                                        if real_nodes else ()))  # fmt: skip
    for name in needed:
        if not os.access(bin_dir / name, os.X_OK):
            raise FileNotFoundError(f"{bin_dir / name} missing: run tools/cluster/build")
    state.mkdir(parents=True, exist_ok=True)
    lock = realnode.prepare(state) if real_nodes else None
    try:
        return _up(state, bin_dir, node_count, real_nodes, lock, t0)
    finally:
        if lock is not None:
            os.close(lock)  # the node's processes hold their own copies


def _up(
    state: Path, bin_dir: Path, node_count: int, real_nodes: int, lock: int | None, t0: float
) -> Path:
    kubeconfig = state / "kubeconfig"
    pki = state / "pki"
    certs.make_pki(pki)
    ports = {n: procs.free_port() for n in ("etcd", "etcd-peer", "apiserver", "kcm", "scheduler")}
    host = network.NODE_IP if real_nodes else "127.0.0.1"
    server = f"https://{host}:{ports['apiserver']}"
    for user in ("admin", "kube-controller-manager", "kube-scheduler", "kwok"):
        path = kubeconfig if user == "admin" else state / f"{user}.kubeconfig"
        certs.write_kubeconfig(path, pki, user, server)

    etcd_url = _start_etcd(state, bin_dir, ports)
    _start_apiserver(state, bin_dir, ports, etcd_url, real_nodes)
    (state / "cluster.json").write_text(json.dumps(
        {"server": server, "bin_dir": str(bin_dir), "ports": ports, "real_nodes": real_nodes},
        indent=2) + "\n")  # fmt: skip
    kubectl(bin_dir, kubeconfig, "apply", "-f", "-", stdin=json.dumps(
        {"apiVersion": "v1", "kind": "List",
         "items": [*kwoknodes.kwok_nodes(node_count), STORAGE_CLASS]}
    ))  # fmt: skip
    _start_controllers(state, bin_dir, ports)
    procs.wait(f"{node_count} kwok nodes Ready",
               lambda: _ready_nodes(bin_dir, kubeconfig) >= node_count, state)  # fmt: skip
    # Pods are refused until the namespace's default ServiceAccount exists (made by the
    # controller-manager): wait for it so the first test does not race it.
    procs.wait("the default ServiceAccount",
               lambda: bool(kubectl(bin_dir, kubeconfig, "get", "serviceaccount", "default")),
               state)  # fmt: skip
    if lock is not None:
        realnode.start(state, bin_dir, server,
                       lambda *a, stdin=None: kubectl(bin_dir, kubeconfig, *a, stdin=stdin),
                       lock, log=log)  # fmt: skip
    log(f"ready in {time.monotonic() - t0:.1f} s: {server} (KUBECONFIG={kubeconfig})")
    return kubeconfig


def _cluster_kubectl(state: Path) -> Callable[..., str] | None:
    """A kubectl bound to this state dir's cluster, or None when none was started there."""
    try:
        info = json.loads((state / "cluster.json").read_text())
    except (FileNotFoundError, ValueError):
        return None
    bin_dir = Path(info["bin_dir"])
    return lambda *a, stdin=None: kubectl(bin_dir, state / "kubeconfig", "--request-timeout=10s",
                                          *a, stdin=stdin)  # fmt: skip


def _provisioned_dirs(state: Path) -> list[Path]:
    """The hostPath provisioner's directories of this cluster's PVs, asked of a running apiserver
    (/tmp/hostpath_pv is shared with any other cluster on the machine)."""
    k = _cluster_kubectl(state)
    try:
        out = k("get", "pv", "-o", "json") if k else '{"items": []}'
    except RuntimeError:
        return []
    paths = [pv["spec"].get("hostPath", {}).get("path", "") for pv in json.loads(out)["items"]]
    return [Path(p) for p in paths if p.startswith("/tmp/hostpath_pv/")]


def down(state: Path, *, purge: bool) -> list[str]:
    """Stop everything `up` started in this state dir; returns what could not be undone."""
    leftovers = _provisioned_dirs(state)
    # The real node first, while the apiserver still answers: its pods are drained properly.
    problems = realnode.stop(state, _cluster_kubectl(state), log=log)
    procs.stop(state, COMPONENTS, log=log)
    for path in leftovers:
        shutil.rmtree(path, ignore_errors=True)
    # A fresh etcd every `up`: tests start from a clean cluster. Certificates are kept for speed.
    shutil.rmtree(state / "etcd", ignore_errors=True)
    with contextlib.suppress(FileNotFoundError):
        (state / "cluster.json").unlink()
    if purge:
        shutil.rmtree(state, ignore_errors=True)
    for problem in problems:
        log(f"could not undo: {problem}")
    return problems
