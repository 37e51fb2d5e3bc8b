#!/usr/bin/env python3
"""Start and stop a local Kubernetes cluster for ROAR's cluster test tier.

Real etcd, kube-apiserver, kube-controller-manager and kube-scheduler with generated
certificates; kwok nodes on which pods become Running and Ready without any container, and
optionally a real node (containerd, kubelet, kube-proxy, CoreDNS) on which ROAR's images run.
Binaries come from tools/cluster/build (cached outside the repo). Standard library only, plus
the openssl command, so it runs before any venv exists.

    cluster.py up   [--dir DIR] [--bin-dir DIR] [--nodes N] [--real-nodes 0|1]
    cluster.py down [--dir DIR] [--purge]
    cluster.py load [--dir DIR] IMAGE...     # podman images into the real node's containerd

`up` prints the kubeconfig path as its last line. See docs/cluster.md.

Modules: pki (certificates, kubeconfigs), procs (processes), network (addresses, host set-up),
kwoknodes, realnode, controlplane (up/down).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import controlplane
import realnode

HERE = Path(__file__).resolve().parent


def default_dir() -> Path:
    return Path(os.environ.get("ROAR_CLUSTER_DIR") or "/tmp/roar-cluster")


def resolve_bin_dir(bin_dir: str | None) -> Path:
    if bin_dir:
        return Path(bin_dir)
    # Builds on a cold machine, a no-op lookup on a warm one.
    res = subprocess.run([str(HERE / "build")], stdout=subprocess.PIPE, text=True)
    if res.returncode != 0:
        raise RuntimeError("tools/cluster/build failed (see its output above)")
    return Path(res.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    a_up = sub.add_parser("up", help="start (or reuse) the cluster; prints the kubeconfig path")
    a_up.add_argument("--dir", type=Path, default=None, help="state dir (default $ROAR_CLUSTER_DIR"
                      " or /tmp/roar-cluster)")  # fmt: skip
    a_up.add_argument("--bin-dir", default=None, help="binaries (default: tools/cluster/build)")
    a_up.add_argument("--nodes", type=int, default=3, help="kwok nodes (default 3)")
    a_up.add_argument("--real-nodes", type=int, default=0, choices=(0, 1),
                      help="real nodes: 0 (default) or 1 (root; one per machine)")  # fmt: skip
    a_down = sub.add_parser("down", help="stop the cluster and drop its etcd data")
    a_down.add_argument("--dir", type=Path, default=None)
    a_down.add_argument("--purge", action="store_true", help="also delete the whole state dir")
    a_load = sub.add_parser("load", help="copy podman images into the real node's containerd")
    a_load.add_argument("--dir", type=Path, default=None)
    a_load.add_argument("images", nargs="+", help="names as the manifests use them")
    sub.add_parser("hostpath-modes", help=argparse.SUPPRESS)  # the real node's own process
    args = ap.parse_args(argv)
    state = (getattr(args, "dir", None) or default_dir()).resolve()
    log = controlplane.log
    try:
        if args.cmd == "up":
            bin_dir = resolve_bin_dir(args.bin_dir)
            for attempt in (1, 2):
                try:
                    print(controlplane.up(state, bin_dir, args.nodes, args.real_nodes))
                    break
                except BaseException as exc:
                    log(f"start-up failed ({exc}); logs are in {state / 'logs'}; stopping it")
                    controlplane.down(state, purge=False)
                    # One retry: a free port can be taken by another process before ours binds.
                    if attempt == 2 or not isinstance(exc, RuntimeError | TimeoutError):
                        raise
        elif args.cmd == "hostpath-modes":
            realnode.watch_hostpath_modes()
        elif args.cmd == "load":
            realnode.load_images(state, args.images, log=log)
        elif controlplane.down(state, purge=args.purge):
            return 1  # something of the machine's could not be put back: said above
    except (RuntimeError, TimeoutError, FileNotFoundError, subprocess.CalledProcessError) as exc:
        log(f"error: {exc}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
