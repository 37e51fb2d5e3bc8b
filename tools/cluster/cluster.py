#!/usr/bin/env python3
"""Start and stop a local Kubernetes control plane for ROAR's cluster test tier.

Real etcd, kube-apiserver, kube-controller-manager and kube-scheduler on 127.0.0.1 with
generated certificates; nodes are simulated by kwok, so pods are scheduled and become Running and
Ready without any container runtime. Binaries come from tools/cluster/build (cached outside the
repo). Standard library only, plus the openssl command, so it runs before any venv exists.

    cluster.py up   [--dir DIR] [--bin-dir DIR] [--nodes N]
    cluster.py down [--dir DIR] [--purge]

`up` prints the kubeconfig path as its last line. See docs/cluster.md.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
SERVICE_CIDR = "10.96.0.0/16"
SERVICE_IP = "10.96.0.1"  # first address of SERVICE_CIDR: the `kubernetes` Service
KWOK_ANNOTATION = "kwok.x-k8s.io/node=fake"
ZONES = ("zone-a", "zone-b", "zone-c")
PKI_LAYOUT = 2  # bump when make_pki changes, so an older state dir regenerates its pki
# Order matters for `down`: stop the clients first and etcd last.
COMPONENTS = ("kwok", "kube-scheduler", "kube-controller-manager", "kube-apiserver", "etcd")


def log(msg: str) -> None:
    print(f"[cluster] {msg}", file=sys.stderr, flush=True)


def default_dir() -> Path:
    return Path(os.environ.get("ROAR_CLUSTER_DIR") or "/tmp/roar-cluster")


def free_port() -> int:
    # Racy in theory (another process may take it before we bind), harmless in practice here.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------- certificates (openssl CLI)


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def _ec_key(name: str, pki: Path) -> None:
    # P-256 keys: generated in milliseconds, unlike RSA, which keeps a cold `up` fast.
    _openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", f"{name}.key", cwd=pki)
    (pki / f"{name}.key").chmod(0o600)


def _cert(
    name: str, subject: str, pki: Path, *, sans: str = "", server: bool = False, ca: str = "ca"
) -> None:
    _ec_key(name, pki)
    usage = "serverAuth,clientAuth" if server else "clientAuth"
    ext = [
        "basicConstraints=critical,CA:FALSE",
        "keyUsage=critical,digitalSignature,keyEncipherment",
        f"extendedKeyUsage={usage}",
    ]
    if sans:
        ext.append(f"subjectAltName={sans}")
    (pki / f"{name}.ext").write_text("\n".join(ext) + "\n")
    _openssl("req", "-new", "-key", f"{name}.key", "-subj", subject, "-out", f"{name}.csr", cwd=pki)
    _openssl(
        "x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.crt", "-CAkey", f"{ca}.key",
        "-CAcreateserial", "-days", "3650", "-sha256", "-extfile", f"{name}.ext",
        "-out", f"{name}.crt", cwd=pki,
    )  # fmt: skip


def _ca(name: str, cn: str, pki: Path) -> None:
    _ec_key(name, pki)
    _openssl(
        "req", "-x509", "-new", "-key", f"{name}.key", "-subj", f"/CN={cn}",
        "-days", "3650", "-sha256", "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign,digitalSignature",
        "-out", f"{name}.crt", cwd=pki,
    )  # fmt: skip


def make_pki(pki: Path) -> None:
    """Generate the CAs, serving and client certificates and the service-account key, once."""
    done = pki / f".complete-{PKI_LAYOUT}"
    if done.exists():
        return
    shutil.rmtree(pki, ignore_errors=True)
    pki.mkdir(parents=True)
    pki.chmod(0o700)
    _ca("ca", "roar-test-cluster-ca", pki)
    # The aggregation layer's own CA (as kubeadm does): the apiserver proves to aggregated API
    # servers, and to the delegated authentication of the controller-manager and scheduler, that
    # a request comes through it.
    _ca("front-proxy-ca", "roar-test-front-proxy-ca", pki)
    _cert("front-proxy-client", "/CN=front-proxy-client", pki, ca="front-proxy-ca")
    local = "IP:127.0.0.1,DNS:localhost"
    _cert("etcd-server", "/CN=etcd", pki, sans=local, server=True)
    _cert("apiserver-etcd-client", "/CN=kube-apiserver-etcd-client", pki)
    svc = ",".join(
        f"DNS:{n}"
        for n in (
            "kubernetes",
            "kubernetes.default",
            "kubernetes.default.svc",
            "kubernetes.default.svc.cluster.local",
        )
    )
    _cert(
        "apiserver", "/CN=kube-apiserver", pki, sans=f"{local},IP:{SERVICE_IP},{svc}", server=True
    )
    # The apiserver's client cert towards kubelets: kwok's nodes serve nothing, but this keeps the
    # apiserver from ever calling a node anonymously.
    _cert("apiserver-kubelet-client", "/CN=kube-apiserver-kubelet-client", pki)
    _cert("admin", "/O=system:masters/CN=roar-admin", pki)
    _cert("kube-controller-manager", "/CN=system:kube-controller-manager", pki)
    _cert("kube-scheduler", "/CN=system:kube-scheduler", pki)
    # kwok plays every kubelet at once (node status, leases, pod status), so it gets admin rights
    # rather than one system:node:<name> identity per node.
    _cert("kwok", "/O=system:masters/CN=kwok", pki)
    _ec_key("sa", pki)
    _openssl("ec", "-in", "sa.key", "-pubout", "-out", "sa.pub", cwd=pki)
    for leftover in pki.glob("*.csr"):
        leftover.unlink()
    done.touch()


def _b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def write_kubeconfig(path: Path, pki: Path, user: str, server: str) -> None:
    """A client-certificate kubeconfig with the data embedded (helm and kubectl read it alike)."""
    cfg = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "roar-test",
                "cluster": {
                    "server": server,
                    "certificate-authority-data": _b64(pki / "ca.crt"),
                },
            }
        ],
        "users": [
            {
                "name": user,
                "user": {
                    "client-certificate-data": _b64(pki / f"{user}.crt"),
                    "client-key-data": _b64(pki / f"{user}.key"),
                },
            }
        ],
        "contexts": [{"name": "roar-test", "context": {"cluster": "roar-test", "user": user}}],
        "current-context": "roar-test",
    }
    path.write_text(json.dumps(cfg, indent=2) + "\n")  # JSON is YAML
    path.chmod(0o600)


# ---------------------------------------------------------------- processes


def _spawn(name: str, argv: list[str], state: Path) -> int:
    logs = state / "logs"
    logs.mkdir(exist_ok=True)
    with open(logs / f"{name}.log", "ab") as out:
        # A session of its own: the component outlives `up` and is not hit by the caller's ^C.
        proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True, cwd=state,
        )  # fmt: skip
    (state / "pids").mkdir(exist_ok=True)
    stat = _proc_stat(proc.pid)
    (state / "pids" / name).write_text(f"{proc.pid} {stat[1] if stat else 0}\n")
    return proc.pid


def _proc_stat(pid: int) -> tuple[str, int] | None:
    """(state, start time) from /proc/<pid>/stat, or None when there is no such process."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return None
    return fields[0], int(fields[19])


def _alive(pid: int, started: int) -> bool:
    """True while the process that `up` started runs. Its start time tells it apart from a later
    process that got the same pid, so `down` never signals anything else."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)  # reap it if it is our own child
    stat = _proc_stat(pid)
    return stat is not None and stat[0] != "Z" and stat[1] == started


def _recorded(state: Path) -> dict[str, tuple[int, int]]:
    out = {}
    for name in COMPONENTS:
        f = state / "pids" / name
        with contextlib.suppress(FileNotFoundError, ValueError):  # ValueError: not ours
            pid, started = f.read_text().split()
            out[name] = (int(pid), int(started))
    return out


def _log_tail(state: Path, name: str, lines: int = 25) -> str:
    f = state / "logs" / f"{name}.log"
    if not f.exists():
        return "(no log)"
    return "\n".join(f.read_text(errors="replace").splitlines()[-lines:])


def _check_running(state: Path) -> None:
    for name, (pid, started) in _recorded(state).items():
        if not _alive(pid, started):
            raise RuntimeError(
                f"{name} exited during start-up; its log ends:\n{_log_tail(state, name)}"
            )


def _wait(what: str, probe, state: Path, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            if probe():
                return
        except Exception as exc:  # the probe's errors are expected until the thing is up
            last = exc
        _check_running(state)
        time.sleep(0.25)
    raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what} (last error: {last})")


def _https_ok(url: str, pki: Path, *, client: str | None = None) -> bool:
    ctx = ssl.create_default_context(cafile=str(pki / "ca.crt"))
    if client:
        ctx.load_cert_chain(str(pki / f"{client}.crt"), str(pki / f"{client}.key"))
    try:
        with urllib.request.urlopen(url, context=ctx, timeout=5) as resp:
            return resp.status == 200
    except urllib.error.HTTPError:
        return False


def _https_anon_ok(url: str) -> bool:
    # kube-controller-manager and kube-scheduler serve /healthz with a self-signed certificate.
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with urllib.request.urlopen(url, context=ctx, timeout=5) as resp:
        return resp.status == 200


# ---------------------------------------------------------------- manifests applied by `up`


def _nodes(count: int) -> list[dict]:
    nodes = []
    for i in range(count):
        name = f"kwok-node-{i}"
        nodes.append(
            {
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {
                    "name": name,
                    "annotations": {
                        KWOK_ANNOTATION.split("=")[0]: KWOK_ANNOTATION.split("=")[1],
                        "node.alpha.kubernetes.io/ttl": "0",
                    },
                    # Well-known labels, zones included, so manifests with node selectors or
                    # topology spread constraints schedule as on a real multi-zone cluster.
                    "labels": {
                        "kubernetes.io/hostname": name,
                        "kubernetes.io/os": "linux",
                        "kubernetes.io/arch": "amd64",
                        "node-role.kubernetes.io/agent": "",
                        "topology.kubernetes.io/zone": ZONES[i % len(ZONES)],
                        "type": "kwok",
                    },
                },
                "spec": {},
                "status": {
                    "allocatable": {"cpu": "32", "memory": "128Gi", "pods": "110"},
                    "capacity": {"cpu": "32", "memory": "128Gi", "pods": "110"},
                },
            }
        )
    return nodes


# The default StorageClass. kwok pods never mount anything, but the scheduler keeps a pod whose
# PVC is unbound Pending, so StatefulSet volumeClaimTemplates need real binding: the in-tree
# hostPath provisioner (kube-controller-manager --enable-hostpath-provisioner) creates a PV per
# PVC, an empty directory under /tmp/hostpath_pv, and deletes it when the PVC goes.
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


# ---------------------------------------------------------------- up / down


def _kubectl(bin_dir: Path, kubeconfig: Path, *args: str, stdin: str | None = None) -> str:
    res = subprocess.run(
        [str(bin_dir / "kubectl"), "--kubeconfig", str(kubeconfig), *args],
        input=stdin, capture_output=True, text=True,
    )  # fmt: skip
    if res.returncode != 0:
        raise RuntimeError(f"kubectl {' '.join(args)} failed: {res.stderr.strip()}")
    return res.stdout


def resolve_bin_dir(bin_dir: str | None) -> Path:
    if bin_dir:
        return Path(bin_dir)
    # Builds on a cold machine, a no-op lookup on a warm one.
    res = subprocess.run([str(HERE / "build")], stdout=subprocess.PIPE, text=True)
    if res.returncode != 0:
        raise RuntimeError("tools/cluster/build failed (see its output above)")
    return Path(res.stdout.strip().splitlines()[-1])


def up(state: Path, bin_dir: Path, node_count: int) -> Path:
    t0 = time.monotonic()
    kubeconfig = state / "kubeconfig"
    if (state / "cluster.json").exists():
        info = json.loads((state / "cluster.json").read_text())
        running = _recorded(state)
        if (
            info.get("bin_dir") == str(bin_dir)
            and set(running) == set(COMPONENTS)
            and all(_alive(pid, started) for pid, started in running.values())
        ):
            log(f"already running ({state})")
            return kubeconfig
        log("stale cluster state found; stopping it first")
    down(state, purge=False)

    for name in (*COMPONENTS, "kubectl"):
        if not os.access(bin_dir / name, os.X_OK):
            raise FileNotFoundError(f"{bin_dir / name} missing: run tools/cluster/build")

    state.mkdir(parents=True, exist_ok=True)
    pki = state / "pki"
    make_pki(pki)
    b = {n: str(bin_dir / n) for n in COMPONENTS}
    p = {n: free_port() for n in ("etcd", "etcd-peer", "apiserver", "kcm", "scheduler")}
    server = f"https://127.0.0.1:{p['apiserver']}"
    for user in ("admin", "kube-controller-manager", "kube-scheduler", "kwok"):
        path = kubeconfig if user == "admin" else state / f"{user}.kubeconfig"
        write_kubeconfig(path, pki, user, server)

    etcd_url = f"https://127.0.0.1:{p['etcd']}"
    _spawn("etcd", [
        b["etcd"], "--name=roar", f"--data-dir={state / 'etcd'}",
        f"--listen-client-urls={etcd_url}", f"--advertise-client-urls={etcd_url}",
        f"--listen-peer-urls=http://127.0.0.1:{p['etcd-peer']}",
        f"--initial-advertise-peer-urls=http://127.0.0.1:{p['etcd-peer']}",
        f"--initial-cluster=roar=http://127.0.0.1:{p['etcd-peer']}",
        f"--cert-file={pki / 'etcd-server.crt'}", f"--key-file={pki / 'etcd-server.key'}",
        f"--trusted-ca-file={pki / 'ca.crt'}", "--client-cert-auth",
        # A throwaway test store: skip fsync-heavy durability, keep the log quiet.
        "--unsafe-no-fsync", "--log-level=warn", "--quota-backend-bytes=2147483648",
    ], state)  # fmt: skip
    _wait("etcd", lambda: _https_ok(f"{etcd_url}/health", pki, client="apiserver-etcd-client"),
          state)  # fmt: skip

    _spawn("kube-apiserver", [
        b["kube-apiserver"],
        "--bind-address=127.0.0.1", "--advertise-address=127.0.0.1",
        # The endpoint reconciler refuses a loopback address, and no pod would reach it anyway:
        # the `kubernetes` Service keeps its ClusterIP but gets no endpoints.
        "--endpoint-reconciler-type=none",
        f"--secure-port={p['apiserver']}",
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
        "--authorization-mode=Node,RBAC", "--enable-admission-plugins=NodeRestriction",
        f"--service-cluster-ip-range={SERVICE_CIDR}", "--allow-privileged=true",
        "--profiling=false", "--v=1",
    ], state)  # fmt: skip
    _wait(
        "kube-apiserver /readyz",
        lambda: _https_ok(f"{server}/readyz", pki, client="admin"),
        state,
        timeout=120,
    )

    _spawn("kube-controller-manager", [
        b["kube-controller-manager"],
        f"--kubeconfig={state / 'kube-controller-manager.kubeconfig'}",
        f"--authentication-kubeconfig={state / 'kube-controller-manager.kubeconfig'}",
        f"--authorization-kubeconfig={state / 'kube-controller-manager.kubeconfig'}",
        "--bind-address=127.0.0.1", f"--secure-port={p['kcm']}", "--leader-elect=false",
        "--use-service-account-credentials=true",
        f"--service-account-private-key-file={pki / 'sa.key'}",
        f"--root-ca-file={pki / 'ca.crt'}",
        f"--cluster-signing-cert-file={pki / 'ca.crt'}",
        f"--cluster-signing-key-file={pki / 'ca.key'}",
        f"--service-cluster-ip-range={SERVICE_CIDR}", "--allocate-node-cidrs=false",
        "--enable-hostpath-provisioner=true", "--controllers=*,bootstrapsigner,tokencleaner",
        "--profiling=false", "--v=1",
    ], state)  # fmt: skip
    _spawn("kube-scheduler", [
        b["kube-scheduler"],
        f"--kubeconfig={state / 'kube-scheduler.kubeconfig'}",
        f"--authentication-kubeconfig={state / 'kube-scheduler.kubeconfig'}",
        f"--authorization-kubeconfig={state / 'kube-scheduler.kubeconfig'}",
        "--bind-address=127.0.0.1", f"--secure-port={p['scheduler']}", "--leader-elect=false",
        "--profiling=false", "--v=1",
    ], state)  # fmt: skip
    _spawn("kwok", [
        b["kwok"], f"--kubeconfig={state / 'kwok.kubeconfig'}",
        f"--config={bin_dir / 'kwok-stages.yaml'}",
        "--manage-all-nodes=false", f"--manage-nodes-with-annotation-selector={KWOK_ANNOTATION}",
        "--node-lease-duration-seconds=40", "--cidr=10.244.0.0/16",
    ], state)  # fmt: skip

    (state / "cluster.json").write_text(
        json.dumps({"server": server, "bin_dir": str(bin_dir), "ports": p}, indent=2) + "\n"
    )

    _kubectl(bin_dir, kubeconfig, "apply", "-f", "-", stdin=json.dumps(
        {"apiVersion": "v1", "kind": "List", "items": [*_nodes(node_count), STORAGE_CLASS]}
    ))  # fmt: skip
    _wait("kube-controller-manager /healthz", lambda: _https_anon_ok(
        f"https://127.0.0.1:{p['kcm']}/healthz"), state)  # fmt: skip
    _wait("kube-scheduler /healthz", lambda: _https_anon_ok(
        f"https://127.0.0.1:{p['scheduler']}/healthz"), state)  # fmt: skip

    def nodes_ready() -> bool:
        out = _kubectl(bin_dir, kubeconfig, "get", "nodes", "-o", "json")
        items = json.loads(out)["items"]
        ready = [
            n for n in items
            if any(c["type"] == "Ready" and c["status"] == "True"
                   for c in n.get("status", {}).get("conditions", []))
        ]  # fmt: skip
        return len(ready) >= node_count

    _wait(f"{node_count} kwok nodes Ready", nodes_ready, state)
    # Pods are refused until the namespace's default ServiceAccount exists (made by the
    # controller-manager): wait for it so the first test does not race it.
    _wait(
        "the default ServiceAccount",
        lambda: bool(_kubectl(bin_dir, kubeconfig, "get", "serviceaccount", "default")),
        state,
    )
    log(f"ready in {time.monotonic() - t0:.1f} s: {server} (KUBECONFIG={kubeconfig})")
    return kubeconfig


def _provisioned_dirs(state: Path) -> list[Path]:
    """The hostPath provisioner's directories of this cluster's PVs, asked of a running apiserver
    (/tmp/hostpath_pv is shared with any other cluster on the machine)."""
    try:
        info = json.loads((state / "cluster.json").read_text())
        out = _kubectl(Path(info["bin_dir"]), state / "kubeconfig", "get", "pv", "-o", "json",
                       "--request-timeout=5s")  # fmt: skip
    except (FileNotFoundError, KeyError, ValueError, RuntimeError):
        return []
    paths = [pv["spec"].get("hostPath", {}).get("path", "") for pv in json.loads(out)["items"]]
    return [Path(p) for p in paths if p.startswith("/tmp/hostpath_pv/")]


def down(state: Path, *, purge: bool) -> None:
    leftovers = _provisioned_dirs(state)
    for name, (pid, started) in _recorded(state).items():
        if _alive(pid, started):
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + 15
            while _alive(pid, started) and time.monotonic() < deadline:
                time.sleep(0.1)
            if _alive(pid, started):
                os.kill(pid, signal.SIGKILL)
            log(f"stopped {name} (pid {pid})")
        (state / "pids" / name).unlink(missing_ok=True)
    for path in leftovers:
        shutil.rmtree(path, ignore_errors=True)
    # A fresh etcd every `up`: tests start from a clean cluster. Certificates are kept for speed.
    shutil.rmtree(state / "etcd", ignore_errors=True)
    with contextlib.suppress(FileNotFoundError):
        (state / "cluster.json").unlink()
    if purge:
        shutil.rmtree(state, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    a_up = sub.add_parser("up", help="start (or reuse) the cluster; prints the kubeconfig path")
    a_up.add_argument("--dir", type=Path, default=None, help="state dir (default $ROAR_CLUSTER_DIR"
                      " or /tmp/roar-cluster)")  # fmt: skip
    a_up.add_argument("--bin-dir", default=None, help="binaries (default: tools/cluster/build)")
    a_up.add_argument("--nodes", type=int, default=3)
    a_down = sub.add_parser("down", help="stop the cluster and drop its etcd data")
    a_down.add_argument("--dir", type=Path, default=None)
    a_down.add_argument("--purge", action="store_true", help="also delete the whole state dir")
    args = ap.parse_args(argv)
    state = (args.dir or default_dir()).resolve()
    try:
        if args.cmd == "up":
            bin_dir = resolve_bin_dir(args.bin_dir)
            for attempt in (1, 2):
                try:
                    print(up(state, bin_dir, args.nodes))
                    break
                except BaseException as exc:
                    log(f"start-up failed ({exc}); logs are in {state / 'logs'}; stopping it")
                    down(state, purge=False)
                    # One retry: a free port can be taken by another process before ours binds.
                    if attempt == 2 or not isinstance(exc, RuntimeError | TimeoutError):
                        raise
        else:
            down(state, purge=args.purge)
    except (RuntimeError, TimeoutError, FileNotFoundError, subprocess.CalledProcessError) as exc:
        log(f"error: {exc}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
