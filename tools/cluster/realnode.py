"""A real node for the test cluster: containerd + runc, kubelet, kube-proxy and CoreDNS on this
machine, so pods scheduled there run real containers (see docs/cluster.md, "The real node").

The kwok nodes stay for scale tests. The real node is tainted `roar.dev/real-node=true:NoSchedule`
and labelled `roar.dev/node=real`; a namespace whose pods belong on it says so with two
annotations (`namespace_annotations()`), which the apiserver's PodNodeSelector and
PodTolerationRestriction admission plugins turn into each pod's node selector and toleration.
Unchanged manifests (the labs') then run there, and nothing else lands on it by accident.

Nothing is pulled: the pause image is built here from one static binary, and images are imported
into containerd from podman (`load_images`). One real node per machine: `start` takes a lock that
the node's processes hold while they live.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import time
from collections.abc import Callable
from pathlib import Path

import network
import pki as certs
import procs

NODE = network.REAL_NODE
TAINT = "roar.dev/real-node"
NODE_LABEL = ("roar.dev/node", "real")
PAUSE_IMAGE = "roar.local/pause:1"
CNI_BIN_DIR = Path("/usr/lib/cni")
CNI_PLUGINS = ("bridge", "host-local", "portmap", "loopback")
# Stop order: the kubelet first (after the pods are gone), containerd last.
COMPONENTS = (
    "kubelet", "kube-proxy", "coredns", "metrics-server", "hostpath-modes", "containerd",
)  # fmt: skip
# Where kube-controller-manager's hostPath provisioner makes each PV's directory.
HOSTPATH_PV_DIR = Path("/tmp/hostpath_pv")
LOCK = network.MACHINE_DIR / "lock"
OWNER = network.MACHINE_DIR / "owner"
NAMESPACE = "k8s.io"  # containerd's namespace for CRI (the kubelet's) containers and images
CGROUP_ROOT = "roar-node"  # every pod's cgroup lives below it, in each hierarchy

Log = Callable[[str], None]


def namespace_annotations() -> dict[str, str]:
    """The annotations that send a namespace's pods to the real node (and only there)."""
    toleration = {"key": TAINT, "operator": "Exists", "effect": "NoSchedule"}
    return {
        "scheduler.alpha.kubernetes.io/node-selector": f"{NODE_LABEL[0]}={NODE_LABEL[1]}",
        "scheduler.alpha.kubernetes.io/defaultTolerations": json.dumps([toleration]),
    }


# ---------------------------------------------------------------- preflight


def preflight() -> None:
    """Raise with what is missing (a package or a kernel feature) before anything is changed."""
    problems = []
    if os.geteuid() != 0:
        problems.append("a real node needs root (network namespaces, mounts, cgroups, iptables)")
    packages = {
        "containerd": "containerd", "ctr": "containerd", "runc": "runc", "iptables": "iptables",
        "ip": "iproute2", "podman": "podman", "mount": "mount",
    }  # fmt: skip
    for tool, package in packages.items():
        if not shutil.which(tool):
            problems.append(f"`{tool}` not found: install the Debian package {package}")
    for plugin in CNI_PLUGINS:
        if not (CNI_BIN_DIR / plugin).exists():
            problems.append(
                f"CNI plugin {CNI_BIN_DIR / plugin} missing: install containernetworking-plugins"
            )
    if not Path("/proc/sys/net/bridge/bridge-nf-call-iptables").exists():
        problems.append("kernel: no br_netfilter (/proc/sys/net/bridge); pods could not reach "
                        "Services whose endpoints share their bridge")  # fmt: skip
    if "overlay" not in Path("/proc/filesystems").read_text():
        problems.append("kernel: no overlay filesystem (containerd's overlayfs snapshotter)")
    for ctl in ("cpu", "cpuacct", "cpuset", "memory", "pids"):
        if (
            not (Path("/sys/fs/cgroup") / ctl).is_dir()
            and not Path("/sys/fs/cgroup/cgroup.controllers").exists()
        ):
            problems.append(f"kernel: cgroup controller {ctl} not mounted")
    if not Path("/proc/self/ns/net").exists():
        problems.append("kernel: no network namespaces")
    if problems:
        raise RuntimeError("this machine cannot run a real node:\n  - " + "\n  - ".join(problems))


def take_lock(state: Path) -> int:
    """The machine-wide lock, as a file descriptor that the node's processes inherit: it is
    released when the last of them exits, even if nobody runs `down`."""
    network.MACHINE_DIR.mkdir(parents=True, exist_ok=True)
    fd = os.open(LOCK, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        owner = OWNER.read_text().strip() if OWNER.exists() else "unknown"
        raise RuntimeError(
            f"a real node already runs on this machine (state dir {owner}); one at a time: "
            f"stop it with tools/cluster/down --dir {owner}"
        ) from None
    OWNER.write_text(f"{state}\n")
    return fd


# ---------------------------------------------------------------- configuration files


def _containerd_config(node: Path) -> Path:
    ctrd = node / "containerd"
    cfg = f"""\
# Written by tools/cluster/realnode.py. containerd 1.6/1.7, config version 2.
version = 2
root = "{ctrd / "root"}"
state = "{ctrd / "state"}"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs",
  "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]

[grpc]
  address = "{ctrd / "containerd.sock"}"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{PAUSE_IMAGE}"
  # Root here lacks CAP_SYS_RESOURCE: without this, runc fails to lower the pause container's
  # OOM score ("can't get final child's PID from pipe").
  restrict_oom_score_adj = true
  # Pod network namespaces below the state dir, not in /run/netns: podman bind-mounts that dir
  # over itself, which would hide our mounts from teardown.
  netns_mounts_under_state_dir = true
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{CNI_BIN_DIR}"
    conf_dir = "{node / "cni" / "net.d"}"
"""
    path = ctrd / "config.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(cfg)
    return path


def _cni_config(node: Path) -> None:
    conf = {
        "cniVersion": "1.0.0",
        "name": "roar",
        "plugins": [
            {
                "type": "bridge",
                "bridge": network.BRIDGE,
                "isGateway": True,
                "ipMasq": False,  # nothing is routed off the machine, so nothing to masquerade
                "hairpinMode": True,  # a pod reaching itself through its Service
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": network.POD_CIDR, "gateway": network.NODE_IP}]],
                    # Routes to the test block only: a pod has no default route off the host.
                    "routes": [{"dst": network.TEST_RANGE}],
                    "dataDir": str(node / "cni" / "ipam"),
                },
            },
            {"type": "portmap", "capabilities": {"portMappings": True}},
        ],
    }
    d = node / "cni" / "net.d"
    d.mkdir(parents=True, exist_ok=True)
    (d / "10-roar.conflist").write_text(json.dumps(conf, indent=2) + "\n")


def _kubelet_config(node: Path, pki: Path, port: int, healthz: int) -> Path:
    cfg = {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        # These machines have cgroup v1 (hybrid); kubelet 1.35+ refuses it unless told not to.
        "failCgroupV1": False,
        "cgroupDriver": "cgroupfs",
        # Everything the kubelet creates lives under one cgroup, which teardown removes.
        "cgroupRoot": f"/{CGROUP_ROOT}",
        "containerRuntimeEndpoint": f"unix://{node / 'containerd' / 'containerd.sock'}",
        "address": network.NODE_IP,
        "port": port,
        "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": healthz,
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"enabled": True},
            "x509": {"clientCAFile": str(pki / "ca.crt")},
        },
        "authorization": {"mode": "Webhook"},
        # A serving certificate from the cluster CA: the apiserver and metrics-server verify it.
        "tlsCertFile": str(pki / "kubelet-serving.crt"),
        "tlsPrivateKeyFile": str(pki / "kubelet-serving.key"),
        "clusterDNS": [network.NODE_IP],
        "clusterDomain": "cluster.local",
        # No upstream resolver: pods resolve cluster names only, nothing off the machine.
        "resolvConf": str(node / "resolv.conf"),
        "failSwapOn": False,
        "oomScoreAdj": 0,  # lowering it needs CAP_SYS_RESOURCE, which root lacks here
        "serializeImagePulls": False,
        # A test node on a shared disk: evict only when truly out of space, never collect the
        # imported images (nothing could pull them back).
        "evictionHard": {
            "memory.available": "100Mi",
            "nodefs.available": "1%",
            "imagefs.available": "1%",
            "nodefs.inodesFree": "1%",
        },
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "volumePluginDir": str(node / "kubelet" / "volume-plugins"),
        "maxPods": 110,
        "nodeStatusReportFrequency": "10s",
        "syncFrequency": "10s",
        "shutdownGracePeriod": "0s",
        "registerWithTaints": [{"key": TAINT, "value": "true", "effect": "NoSchedule"}],
    }
    (node / "resolv.conf").write_text("# test node: cluster DNS only (see docs/cluster.md)\n")
    path = node / "kubelet-config.json"
    path.write_text(json.dumps(cfg, indent=2) + "\n")
    return path


def _kube_proxy_config(node: Path, state: Path, healthz: int, metrics: int) -> Path:
    cfg = {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "clientConnection": {"kubeconfig": str(state / "kube-proxy.kubeconfig")},
        "hostnameOverride": NODE,
        "bindAddress": network.NODE_IP,
        "healthzBindAddress": f"127.0.0.1:{healthz}",
        "metricsBindAddress": f"127.0.0.1:{metrics}",
        "mode": "iptables",
        "clusterCIDR": network.POD_CIDR,
        # NodePorts answer on loopback (kube-proxy sets route_localnet for that) and on the
        # node address, never on the machine's own interface.
        "nodePortAddresses": ["127.0.0.1/32", f"{network.NODE_IP}/32"],
        "iptables": {"localhostNodePorts": True},
        # 0: leave the machine's conntrack sysctls alone.
        "conntrack": {
            "maxPerCore": 0,
            "min": 0,
            "tcpEstablishedTimeout": "0s",
            "tcpCloseWaitTimeout": "0s",
        },
        "oomScoreAdj": 0,
    }
    path = node / "kube-proxy-config.json"
    path.write_text(json.dumps(cfg, indent=2) + "\n")
    return path


def _metrics_api(pki: Path, port: int) -> list[dict]:
    """The metrics.k8s.io API served by metrics-server on the node address: a Service without
    selector and its EndpointSlice point at it, the APIService registers it (CA-verified)."""
    meta = {"name": "metrics-server", "namespace": "kube-system",
            "labels": {"kubernetes.io/service-name": "metrics-server"}}  # fmt: skip
    return [
        {"apiVersion": "v1", "kind": "Service", "metadata": meta,
         "spec": {"ports": [{"name": "https", "port": 443, "targetPort": port}]}},
        {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
         "metadata": {**meta, "name": "metrics-server-node"}, "addressType": "IPv4",
         "endpoints": [{"addresses": [network.NODE_IP], "conditions": {"ready": True}}],
         "ports": [{"name": "https", "port": port, "protocol": "TCP"}]},
        {"apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService",
         "metadata": {"name": "v1beta1.metrics.k8s.io"},
         "spec": {"group": "metrics.k8s.io", "version": "v1beta1",
                  "service": {"name": "metrics-server", "namespace": "kube-system", "port": 443},
                  "caBundle": base64.b64encode((pki / "ca.crt").read_bytes()).decode(),
                  "groupPriorityMinimum": 100, "versionPriority": 100}},
    ]  # fmt: skip


def _corefile(node: Path, state: Path, health: int, ready: int, metrics: int) -> Path:
    path = node / "Corefile"
    path.write_text(f"""\
# Written by tools/cluster/realnode.py: the cluster DNS, on the node address only.
.:53 {{
    bind {network.NODE_IP}
    errors
    health 127.0.0.1:{health}
    ready 127.0.0.1:{ready}
    prometheus 127.0.0.1:{metrics}
    kubernetes cluster.local in-addr.arpa ip6.arpa {{
        kubeconfig {state / "coredns.kubeconfig"}
        pods insecure
        ttl 5
    }}
    cache 5
}}
""")
    return path


# RBAC the node's components need beyond the built-in bindings (system:node-proxier already
# binds the user system:kube-proxy).
RBAC = [
    {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": "roar:apiserver-kubelet-client"},
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "ClusterRole",
            "name": "system:kubelet-api-admin",
        },
        "subjects": [
            {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "User",
                "name": "kube-apiserver-kubelet-client",
            }
        ],
    },
    {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": "roar:coredns"},
        "rules": [
            {
                "apiGroups": [""],
                "resources": ["services", "pods", "namespaces"],
                "verbs": ["list", "watch"],
            },
            {
                "apiGroups": ["discovery.k8s.io"],
                "resources": ["endpointslices"],
                "verbs": ["list", "watch"],
            },
        ],
    },
    # metrics-server, as upstream's manifests grant it: read nodes and pods, scrape the kubelet's
    # resource metrics, delegate authentication and authorization to the apiserver.
    {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": "roar:metrics-server"},
        "rules": [
            {"apiGroups": [""], "resources": ["nodes/metrics"], "verbs": ["get"]},
            {"apiGroups": [""], "resources": ["pods", "nodes"], "verbs": ["get", "list", "watch"]},
        ],
    },
    *(
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": f"roar:metrics-server:{role.split(':')[-1]}"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": role,
            },
            "subjects": [
                {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "User",
                    "name": "roar:metrics-server",
                }
            ],
        }
        for role in ("roar:metrics-server", "system:auth-delegator")
    ),
    {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": "roar:metrics-server-auth-reader", "namespace": "kube-system"},
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "Role",
            "name": "extension-apiserver-authentication-reader",
        },
        "subjects": [
            {"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "roar:metrics-server"}
        ],
    },
    {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": "roar:coredns"},
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "ClusterRole",
            "name": "roar:coredns",
        },
        "subjects": [
            {"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "roar:coredns"}
        ],
    },
]


# ---------------------------------------------------------------- storage


def watch_hostpath_modes(interval: float = 0.2) -> None:
    """Make every new PV directory of the hostPath provisioner world-writable, as kind's and
    k3s's local-path provisioners do. The in-tree provisioner creates them 0750 root:root and
    the kubelet applies no fsGroup to hostPath volumes, so a non-root pod (MariaDB as 999, ROAR
    as 10001) could not write its own claim. Runs as one of the node's processes."""
    seen: set[str] = set()
    while True:
        with contextlib.suppress(FileNotFoundError):
            for entry in os.scandir(HOSTPATH_PV_DIR):
                if entry.name not in seen and entry.is_dir(follow_symlinks=False):
                    with contextlib.suppress(OSError):
                        os.chmod(entry.path, 0o777)
                        seen.add(entry.name)
        time.sleep(interval)


# ---------------------------------------------------------------- images


def _ctr(node: Path, *args: str, input: bytes | None = None) -> str:
    sock = node / "containerd" / "containerd.sock"
    res = subprocess.run(["ctr", "--address", str(sock), "-n", NAMESPACE, *args], input=input,
                         capture_output=True)  # fmt: skip
    if res.returncode != 0:
        raise RuntimeError(f"ctr {' '.join(args)} failed: {res.stderr.decode().strip()}")
    return res.stdout.decode()


def _pause_archive(pause_binary: Path) -> bytes:
    """A docker-archive with one layer holding /pause (what `ctr images import` reads)."""
    layer = io.BytesIO()
    with tarfile.open(fileobj=layer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tar.gettarinfo(str(pause_binary), arcname="pause")
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        info.mtime = 0
        with open(pause_binary, "rb") as f:
            tar.addfile(info, f)
    layer_bytes = layer.getvalue()
    diff_id = "sha256:" + hashlib.sha256(layer_bytes).hexdigest()
    config = json.dumps({
        "architecture": "amd64", "os": "linux",
        "config": {"Entrypoint": ["/pause"], "User": "65535:65535"},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
    }).encode()  # fmt: skip
    manifest = json.dumps(
        [{"Config": "config.json", "RepoTags": [PAUSE_IMAGE], "Layers": ["layer.tar"]}]
    ).encode()
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        for name, data in (("layer.tar", layer_bytes), ("config.json", config),
                           ("manifest.json", manifest)):  # fmt: skip
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def images(state: Path) -> set[str]:
    """The image names the real node's containerd holds."""
    node = state / "node"
    return set(_ctr(node, "images", "list", "-q").split())


def load_images(state: Path, names: list[str], *, log: Log) -> None:
    """Copy images from podman's store into the node's containerd under the same names (one
    archive, shared layers once), so pods naming them with a pull policy of Never or
    IfNotPresent start without any pull."""
    missing = [n for n in names if n not in images(state)]
    if not missing:
        return
    t0 = time.monotonic()
    sock = str(state / "node" / "containerd" / "containerd.sock")
    # Streamed: podman's archive goes straight into containerd, never whole in memory or on disk.
    save = subprocess.Popen(["podman", "save", "--multi-image-archive", *missing],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    load = subprocess.run(["ctr", "--address", sock, "-n", NAMESPACE, "images", "import", "-"],
                          stdin=save.stdout, capture_output=True)  # fmt: skip
    assert save.stdout and save.stderr
    save.stdout.close()
    err = save.stderr.read().decode()
    if save.wait() != 0 or load.returncode != 0:
        raise RuntimeError(f"loading {' '.join(missing)} failed: {err}{load.stderr.decode()}")
    log(f"loaded {', '.join(missing)} into the node in {time.monotonic() - t0:.1f} s")
    if lost := set(missing) - images(state):
        raise RuntimeError(f"containerd did not keep {', '.join(sorted(lost))} after the import")


# ---------------------------------------------------------------- start


def prepare(state: Path) -> int:
    """Before the control plane starts: check the machine, take the lock, make the bridge (the
    apiserver listens on the node address). Returns the lock's file descriptor for `start`."""
    preflight()
    lock = take_lock(state)
    try:
        (state / "node").mkdir(parents=True, exist_ok=True)  # `stop` undoes what follows
        network.setup()
    except BaseException:
        os.close(lock)
        raise
    return lock


def start(
    state: Path, bin_dir: Path, server: str, kubectl: Callable[..., str], lock: int, *, log: Log
) -> None:
    """Start the node's components once the control plane runs, and wait for the Node to be
    Ready, DNS to answer and kube-proxy to be healthy. The node's processes inherit `lock`."""
    node = state / "node"
    pki = state / "pki"
    node.mkdir(parents=True, exist_ok=True)
    for user in ("kube-proxy", "coredns"):
        certs.write_kubeconfig(state / f"{user}.kubeconfig", pki, user, server)
    certs.write_kubeconfig(state / "kubelet.kubeconfig", pki, f"node-{NODE}", server)
    kubectl("apply", "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "List",
                                                  "items": RBAC}))  # fmt: skip
    ports = {n: procs.free_port() for n in ("kubelet", "kubelet-healthz", "proxy-healthz",
                                            "proxy-metrics", "dns-health", "dns-ready",
                                            "dns-metrics", "metrics-server")}  # fmt: skip
    path = f"{bin_dir}:/usr/sbin:/usr/bin:/sbin:/bin"
    env = {"PATH": path, "HOME": str(node), "LANG": "C.UTF-8"}

    _cni_config(node)
    procs.spawn("containerd", ["containerd", "--config", str(_containerd_config(node))], state,
                env=env, pass_fds=(lock,))  # fmt: skip
    procs.wait("containerd", lambda: _ctr(node, "version") is not None, state, timeout=30)
    _ctr(node, "images", "import", "-", input=_pause_archive(bin_dir / "pause"))

    kubelet_config = _kubelet_config(node, pki, ports["kubelet"], ports["kubelet-healthz"])
    proxy_config = _kube_proxy_config(node, state, ports["proxy-healthz"], ports["proxy-metrics"])
    _make_cgroups()
    procs.spawn("kubelet", [
        str(bin_dir / "kubelet"), f"--config={kubelet_config}",
        f"--kubeconfig={state / 'kubelet.kubeconfig'}", f"--hostname-override={NODE}",
        f"--node-ip={network.NODE_IP}", f"--root-dir={node / 'kubelet'}",
        f"--cert-dir={node / 'kubelet' / 'pki'}",
        f"--node-labels={NODE_LABEL[0]}={NODE_LABEL[1]},type=real",
        "--v=1",
    ], state, env=env, pass_fds=(lock,))  # fmt: skip
    procs.spawn("kube-proxy", [
        str(bin_dir / "kube-proxy"),
        f"--config={proxy_config}",
        "--v=1",
    ], state, env=env, pass_fds=(lock,))  # fmt: skip
    procs.spawn("hostpath-modes", [sys.executable, str(Path(__file__).with_name("cluster.py")),
                                   "hostpath-modes"], state, env=env, pass_fds=(lock,))  # fmt: skip
    ms = state / "metrics-server.kubeconfig"
    certs.write_kubeconfig(ms, pki, "metrics-server", server)
    procs.spawn("metrics-server", [
        str(bin_dir / "metrics-server"), f"--bind-address={network.NODE_IP}",
        f"--secure-port={ports['metrics-server']}",
        f"--tls-cert-file={pki / 'metrics-server.crt'}",
        f"--tls-private-key-file={pki / 'metrics-server.key'}",
        f"--kubeconfig={ms}", f"--authentication-kubeconfig={ms}",
        f"--authorization-kubeconfig={ms}",
        f"--kubelet-certificate-authority={pki / 'ca.crt'}",
        f"--kubelet-client-certificate={pki / 'metrics-server.crt'}",
        f"--kubelet-client-key={pki / 'metrics-server.key'}",
        "--kubelet-preferred-address-types=InternalIP", "--kubelet-use-node-status-port",
        "--metric-resolution=10s", "--kubelet-request-timeout=5s", "--v=1",
    ], state, env=env, pass_fds=(lock,))  # fmt: skip
    kubectl("apply", "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "List",
        "items": _metrics_api(pki, ports["metrics-server"])}))  # fmt: skip
    procs.spawn("coredns", [
        str(bin_dir / "coredns"), "-conf",
        str(_corefile(node, state, ports["dns-health"], ports["dns-ready"], ports["dns-metrics"])),
    ], state, env=env, pass_fds=(lock,))  # fmt: skip

    def node_ready() -> bool:
        out = json.loads(kubectl("get", "node", NODE, "-o", "json"))
        return any(c["type"] == "Ready" and c["status"] == "True"
                   for c in out.get("status", {}).get("conditions", []))  # fmt: skip

    procs.wait(f"node {NODE} Ready", node_ready, state, timeout=120)
    dns_ready = f"http://127.0.0.1:{ports['dns-ready']}/ready"
    procs.wait("CoreDNS ready", lambda: procs.http_ok(dns_ready), state)
    proxy_healthz = f"http://127.0.0.1:{ports['proxy-healthz']}/healthz"
    procs.wait("kube-proxy healthy", lambda: procs.http_ok(proxy_healthz), state)

    def metrics_api_available() -> bool:
        jsonpath = "jsonpath={.status.conditions[?(@.type=='Available')].status}"
        return kubectl("get", "apiservice", "v1beta1.metrics.k8s.io", "-o", jsonpath) == "True"

    procs.wait("the metrics API available", metrics_api_available, state)
    (node / "ports.json").write_text(json.dumps(ports, indent=2) + "\n")
    log(f"real node {NODE} Ready at {network.NODE_IP}")


# ---------------------------------------------------------------- stop


def _drain(kubectl: Callable[..., str], *, log: Log, timeout: float = 60) -> None:
    """Evict every pod from the node (a NoExecute taint nothing tolerates) and wait until the
    kubelet has stopped them, so their sandboxes, network namespaces and mounts are released the
    normal way before the processes stop."""
    with contextlib.suppress(RuntimeError):
        kubectl("taint", "node", NODE, f"{TAINT}-teardown=true:NoExecute", "--overwrite")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            out = kubectl(
                "get", "pods", "-A", "-o", "json", f"--field-selector=spec.nodeName={NODE}"
            )
            pods = json.loads(out)["items"]
        except RuntimeError:
            return
        if not pods:
            return
        time.sleep(1)
    log(f"pods still on {NODE} after {timeout:.0f} s: stopping their containers by force")


def _kill_leftovers(node: Path, *, log: Log) -> None:
    """Kill what survived the kubelet: containers (their shims hold them) and their shims."""
    sock = str(node / "containerd" / "containerd.sock")
    for pid_dir in Path("/proc").iterdir():
        if not pid_dir.name.isdigit():
            continue
        try:
            cmdline = (pid_dir / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if cmdline and cmdline[0].endswith(b"containerd-shim-runc-v2") and sock.encode() in cmdline:
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid_dir.name), signal.SIGKILL)
                log(f"killed shim {pid_dir.name}")
    # Container processes are in the kubelet's cgroups: kill whatever is left there.
    for tasks in (Path("/sys/fs/cgroup/pids") / CGROUP_ROOT).rglob("cgroup.procs"):
        for pid in tasks.read_text().split():
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), signal.SIGKILL)


def _unmount_under(*roots: Path) -> None:
    """Unmount every mount below these dirs, deepest first."""
    mounts = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].encode().decode("unicode_escape")
        if any(point == str(r) or point.startswith(f"{r}/") for r in roots):
            mounts.append(point)
    for point in sorted(set(mounts), key=len, reverse=True):
        subprocess.run(["umount", "-l", point], capture_output=True)


def _make_cgroups() -> None:
    """The kubelet's cgroupRoot in every v1 hierarchy (the kubelet wants it to exist); cpuset
    needs its CPUs and memory nodes copied from the parent before anything can join it."""
    for ctl in Path("/sys/fs/cgroup").iterdir():
        if not (ctl / "cgroup.procs").exists():
            continue
        root = ctl / CGROUP_ROOT
        root.mkdir(exist_ok=True)
        for knob in ("cpuset.cpus", "cpuset.mems"):
            if (ctl / knob).exists() and not (root / knob).read_text().strip():
                (root / knob).write_text((ctl / knob).read_text())


def _remove_cgroups() -> None:
    for ctl in Path("/sys/fs/cgroup").iterdir():
        root = ctl / CGROUP_ROOT
        if not root.is_dir():
            continue
        for d in sorted((p for p in root.rglob("*") if p.is_dir()), key=lambda p: len(p.parts),
                        reverse=True):  # fmt: skip
            with contextlib.suppress(OSError):
                d.rmdir()
        with contextlib.suppress(OSError):
            root.rmdir()


def stop(state: Path, kubectl: Callable[..., str] | None, *, log: Log) -> list[str]:
    """Stop the node and put the machine back as it was; returns what could not be undone."""
    node = state / "node"
    running = procs.recorded(state, COMPONENTS)
    if not running and not node.exists():
        return []
    if kubectl is not None and "kubelet" in running:
        _drain(kubectl, log=log)
    procs.stop(state, ["kubelet", "kube-proxy", "coredns", "metrics-server", "hostpath-modes"],
               log=log)  # fmt: skip
    _kill_leftovers(node, log=log)
    procs.stop(state, ["containerd"], log=log)
    _kill_leftovers(node, log=log)
    _unmount_under(node, Path("/run/containerd"))
    _remove_cgroups()
    problems = network.restore()
    shutil.rmtree(node, ignore_errors=True)
    with contextlib.suppress(FileNotFoundError):
        OWNER.unlink()
    return problems
