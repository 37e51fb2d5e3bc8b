"""Helpers for the cluster tier: the handle that the `kube_cluster` fixture yields, waits, and
what the real node changes on the host."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

CACHE = Path(os.environ.get("ROAR_CACHE_DIR") or "/var/cache/roar")
TOOLS = Path(__file__).resolve().parents[2] / "tools" / "cluster"
# The cluster tooling's own definitions (addresses, node name, annotations): standard-library
# modules, imported rather than restated.
sys.path.insert(0, str(TOOLS))
import network  # noqa: E402 - re-exported: the tests use its definitions
import realnode  # noqa: E402, F401 - re-exported: the tests use its definitions


@dataclass
class KubeCluster:
    kubeconfig: Path
    bin_dir: Path
    state_dir: Path
    helm_home: Path = field(init=False)

    def __post_init__(self) -> None:
        self.helm_home = self.state_dir / "helm"

    @property
    def env(self) -> dict[str, str]:
        env = dict(os.environ, KUBECONFIG=str(self.kubeconfig))
        # The built kubectl first on PATH, so helm plugins and scripts see the same version.
        env["PATH"] = f"{self.bin_dir}:{env.get('PATH', '')}"
        for kind in ("CACHE", "CONFIG", "DATA"):  # keep helm off the user's own repos/config
            env[f"HELM_{kind}_HOME"] = str(self.helm_home / kind.lower())
        return env

    def kubectl(
        self, *args: str, check: bool = True, input: str | None = None, timeout: float = 180
    ) -> subprocess.CompletedProcess[str]:
        return _run(
            [str(self.bin_dir / "kubectl"), *args], self.env, check=check, input=input,
            timeout=timeout,
        )  # fmt: skip

    def kubectl_json(self, *args: str) -> Any:
        return json.loads(self.kubectl(*args, "-o", "json").stdout)

    def helm(
        self, *args: str, check: bool = True, timeout: float = 300
    ) -> subprocess.CompletedProcess[str]:
        return _run([str(helm_binary()), *args], self.env, check=check, timeout=timeout)


def _run(
    argv: list[str], env: dict[str, str], *, check: bool, input: str | None = None, timeout: float
) -> subprocess.CompletedProcess[str]:
    res = subprocess.run(
        argv, env=env, input=input, capture_output=True, text=True, timeout=timeout
    )
    if check and res.returncode != 0:
        # CalledProcessError hides stderr in pytest's report; this shows what the tool said.
        raise AssertionError(
            f"{' '.join(argv)} exited {res.returncode}\n"
            f"stdout:\n{res.stdout}\nstderr:\n{res.stderr}"
        )
    return res


def helm_binary() -> Path:
    """Helm from scripts/setup/kube-tools.sh (its cache bin dir), else from PATH."""
    for candidate in (CACHE / "bin" / "helm", shutil.which("helm")):
        if candidate and os.access(candidate, os.X_OK):
            return Path(candidate)
    pytest.fail("helm not found: run scripts/setup/kube-tools.sh (installs it into "
                f"{CACHE / 'bin'})")  # fmt: skip


def wait_for(
    probe: Callable[[], bool], *, what: str, timeout: float = 60, interval: float = 0.5
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if probe():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def is_ready(obj: dict[str, Any]) -> bool:
    conds = obj.get("status", {}).get("conditions", [])
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conds)


def apply(cluster: KubeCluster, namespace: str, *objects: dict[str, Any]) -> None:
    doc = {"apiVersion": "v1", "kind": "List", "items": list(objects)}
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(doc))


@dataclass(frozen=True)
class HostState:
    """What a real node touches on the machine, read from the kernel: the sysctls kubelet and
    kube-proxy set, iptables chains of the node's prefixes, links, routes of the test block,
    network namespaces, mounts and cgroups of the node, and its processes (those whose command
    line names the cluster's directory: other tiers' container engines, such as the images
    tier's containerd, come and go on their own while the cluster runs)."""

    sysctls: tuple[tuple[str, str], ...]
    chains: tuple[str, ...]
    links: tuple[str, ...]
    routes: tuple[str, ...]
    netns: tuple[str, ...]
    mounts: tuple[str, ...]
    cgroups: tuple[str, ...]
    processes: tuple[str, ...]

    @classmethod
    def read(cls, cluster_dir: Path) -> HostState:
        def out(*argv: str) -> str:
            return subprocess.run(argv, capture_output=True, text=True).stdout

        chains = []
        for cmd in ("iptables", "ip6tables"):
            for table in network.TABLES:
                for line in out(f"{cmd}-save", "-t", table).splitlines():
                    if line.startswith(":") and line[1:].startswith(network.CHAIN_PREFIXES):
                        chains.append(f"{cmd}/{table}/{line[1:].split()[0]}")
        mounts = [
            line.split()[4]
            for line in Path("/proc/self/mountinfo").read_text().splitlines()
            if any(k in line.split()[4] for k in ("kubelet", "containerd", "netns/cni-"))
        ]
        procs = []
        for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
            try:
                argv = cmdline.read_bytes().decode(errors="replace").split("\0")
            except OSError:
                continue
            if str(cluster_dir) in " ".join(argv):
                procs.append(argv[0])
        netns = Path("/var/run/netns")
        return cls(
            sysctls=tuple(
                (n, (Path("/proc/sys") / n).read_text().strip())
                for n in network.SYSCTLS
                if (Path("/proc/sys") / n).exists()
            ),
            chains=tuple(sorted(chains)),
            # The node's bridge and its ports (other engines' bridges come and go on their own).
            links=tuple(sorted(line.split(":")[1].strip().split("@")[0]
                               for line in out("ip", "-o", "link", "show").splitlines()
                               if f" {network.BRIDGE}:" in line
                               or f"master {network.BRIDGE} " in line)),
            routes=tuple(sorted(r for r in out("ip", "route", "show", "table", "all").splitlines()
                                if "198.18." in r or "198.19." in r)),
            netns=tuple(sorted(p.name for p in netns.glob("cni-*"))) if netns.is_dir() else (),
            mounts=tuple(sorted(mounts)),
            cgroups=tuple(sorted(str(p) for p in Path("/sys/fs/cgroup").glob("*/roar-node"))),
            processes=tuple(sorted(procs)),
        )  # fmt: skip

    @staticmethod
    def diff(before: HostState, after: HostState) -> str:
        lines = ["the machine differs from before the cluster started:"]
        for name in before.__dataclass_fields__:
            b, a = set(getattr(before, name)), set(getattr(after, name))
            if a != b:
                lines.append(f"  {name}: left behind {sorted(a - b)}, lost {sorted(b - a)}")
        return "\n".join(lines)


def assert_stored(stored: Any, sent: Any, where: str = "spec") -> None:
    """Everything sent was stored as sent (server defaults may add fields, never drop one: a
    structural schema prunes what it does not know)."""
    if isinstance(sent, dict):
        assert isinstance(stored, dict), where
        for key, value in sent.items():
            assert key in stored, f"{where}.{key} was not stored (pruned by the schema?)"
            assert_stored(stored[key], value, f"{where}.{key}")
    elif isinstance(sent, list):
        assert isinstance(stored, list) and len(stored) == len(sent), where
        for i, (a, b) in enumerate(zip(stored, sent, strict=True)):
            assert_stored(a, b, f"{where}[{i}]")
    else:
        assert stored == sent, f"{where}: stored {stored!r}, sent {sent!r}"
