"""The test cluster's addresses, and the host networking a real node needs, set up and undone.

Every cluster address is in 198.18.0.0/15, the block reserved for network testing (RFC 2544) that
no real network here uses. The real node's pods live on the bridge `roar0` (198.18.0.0/24, the
host is .1); a blackhole route covers the rest of the block, pods get routes to the block only,
and a FORWARD guard drops anything from the bridge to another interface, so no test packet can
leave the machine. What the node's components change on the host (sysctls, iptables chains) is
recorded before they start and put back by `restore`.
"""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
from pathlib import Path

TEST_RANGE = "198.18.0.0/15"
BRIDGE = "roar0"
NODE_IP = "198.18.0.1"  # the real node's InternalIP; with a real node the apiserver listens here
POD_CIDR = "198.18.0.0/24"  # the real node's pods (host-local IPAM)
KWOK_POD_CIDR = "198.18.128.0/17"  # kwok's pretend pod IPs: nothing answers there
SERVICE_CIDR = "198.19.0.0/16"
SERVICE_IP = "198.19.0.1"  # first address of SERVICE_CIDR: the `kubernetes` Service
REAL_NODE = "roar-node-0"

# Machine-wide, not per state dir: one real node per machine (the bridge, the CIDRs and these
# records are the machine's). /run is a tmpfs, so a reboot, which also resets sysctls, clears it.
MACHINE_DIR = Path("/run/roar-real-node")

# What kubelet and kube-proxy set (kubelet: its kernel defaults; kube-proxy: route_localnet for
# NodePorts on 127.0.0.1) and what this module sets (forwarding, bridged traffic through
# iptables so a pod reaches a Service whose endpoint shares its bridge).
SYSCTLS = (
    "vm/overcommit_memory",
    "vm/panic_on_oom",
    "kernel/panic",
    "kernel/panic_on_oops",
    "kernel/keys/root_maxkeys",
    "kernel/keys/root_maxbytes",
    "net/ipv4/ip_forward",
    "net/ipv4/conf/all/route_localnet",
    "net/bridge/bridge-nf-call-iptables",
    "net/bridge/bridge-nf-call-ip6tables",
)
# Chains the node adds: kube-proxy's and kubelet's KUBE-*, the CNI portmap plugin's CNI-*, ours.
CHAIN_PREFIXES = ("KUBE-", "CNI-", "ROAR-")
TABLES = ("filter", "nat", "mangle", "raw")
GUARD_CHAIN = "ROAR-NODE-GUARD"


def _run(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    res = subprocess.run(argv, capture_output=True, text=True)
    if check and res.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed: {res.stderr.strip()}")
    return res


def _sysctl_path(name: str) -> Path:
    return Path("/proc/sys") / name


def save_host_state() -> None:
    """Record the sysctls and iptables chains before the node changes them (once: if a record
    exists, an earlier node was not torn down and that record still holds the original state)."""
    MACHINE_DIR.mkdir(parents=True, exist_ok=True)
    record = MACHINE_DIR / "host-state.json"
    if record.exists():
        return
    sysctls = {n: _sysctl_path(n).read_text().strip() for n in SYSCTLS if _sysctl_path(n).exists()}
    chains = {c: {t: sorted(_chains(c, t)) for t in TABLES} for c in ("iptables", "ip6tables")}
    record.write_text(json.dumps({"sysctls": sysctls, "chains": chains}, indent=2) + "\n")


def _chains(cmd: str, table: str) -> set[str]:
    res = _run(f"{cmd}-save", "-t", table, check=False)
    return {m.group(1) for m in re.finditer(r"^:(\S+)", res.stdout, re.M)}


def set_sysctl(name: str, value: str) -> None:
    _sysctl_path(name).write_text(value)


def setup() -> None:
    """The bridge with the node address, the blackhole route, the guard, the sysctls."""
    save_host_state()
    if _run("ip", "link", "show", BRIDGE, check=False).returncode != 0:
        _run("ip", "link", "add", BRIDGE, "type", "bridge")
    addrs = _run("ip", "-o", "-4", "addr", "show", "dev", BRIDGE).stdout
    if f" {NODE_IP}/" not in addrs:
        _run("ip", "addr", "add", f"{NODE_IP}/24", "dev", BRIDGE)
    _run("ip", "link", "set", BRIDGE, "up")
    _run("ip", "route", "replace", "blackhole", TEST_RANGE)
    if _run("iptables", "-n", "-L", GUARD_CHAIN, check=False).returncode != 0:
        _run("iptables", "-N", GUARD_CHAIN)
        _run("iptables", "-A", GUARD_CHAIN, "-i", BRIDGE, "!", "-o", BRIDGE, "-j", "DROP")
        _run("iptables", "-I", "FORWARD", "1", "-j", GUARD_CHAIN)
    set_sysctl("net/ipv4/ip_forward", "1")
    set_sysctl("net/bridge/bridge-nf-call-iptables", "1")


def _drop_chains(cmd: str, keep: dict[str, list[str]]) -> None:
    """Remove the chains named CHAIN_PREFIXES that were not there before, with every rule that
    jumps to them, by restoring each table without them (one atomic iptables-restore)."""
    for table in TABLES:
        dump = _run(f"{cmd}-save", "-t", table, check=False).stdout
        if not dump:
            continue
        before = set(keep.get(table, []))
        extra = {c for c in _chains(cmd, table) if c.startswith(CHAIN_PREFIXES) and c not in before}
        if not extra:
            continue
        lines = []
        for line in dump.splitlines():
            words = line.split()
            if line.startswith(":") and line[1:].split()[0] in extra:
                continue
            if line.startswith("-A") and (words[1] in extra or any(w in extra for w in words[2:])):
                continue
            lines.append(line)
        subprocess.run(
            [f"{cmd}-restore", "-w"], input="\n".join(lines) + "\n", text=True, check=True,
            capture_output=True,
        )  # fmt: skip


def restore() -> list[str]:
    """Undo `setup` and what kubelet/kube-proxy changed; returns what could not be undone."""
    problems = []
    record = MACHINE_DIR / "host-state.json"
    saved = json.loads(record.read_text()) if record.exists() else {"sysctls": {}, "chains": {}}
    for cmd in ("iptables", "ip6tables"):
        try:
            _drop_chains(cmd, saved["chains"].get(cmd, {}))
        except (subprocess.CalledProcessError, FileNotFoundError) as exc:
            problems.append(f"{cmd}: {exc}")
    _run("ip", "link", "del", BRIDGE, check=False)
    _run("ip", "route", "del", "blackhole", TEST_RANGE, check=False)
    for name, value in saved["sysctls"].items():
        try:
            if _sysctl_path(name).read_text().strip() != value:
                set_sysctl(name, value)
        except OSError as exc:
            problems.append(f"sysctl {name}: {exc}")
    if not problems:
        with contextlib.suppress(FileNotFoundError):
            record.unlink()
    return problems
