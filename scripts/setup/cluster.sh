#!/usr/bin/env bash
# Installer for the cluster test tier (idempotent; root on Debian 12 or 13): the Debian packages
# it needs (the real node's containerd, runc, CNI plugins and iptables among them), then the
# control-plane and node binaries built from Go modules by tools/cluster/build,
# or reused from ${ROAR_CACHE_DIR:-/var/cache/roar}/cluster when this recipe was built before.
# A cold build takes a long while on 2 cores (see docs/cluster.md); later runs take a second.
# Prints the bin dir as its last line.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"

# shellcheck source=scripts/setup/apt.sh
source "$root/scripts/setup/apt.sh"
# openssl: certificates for `tools/cluster/up`; util-linux: flock serialises concurrent builds;
# ca-certificates: the module proxy. The real node (docs/cluster.md): containerd (with ctr), runc,
# the CNI plugins, iptables and iproute2; podman (scripts/setup/containers.sh) builds its images.
# git: `git http-backend` serves the GitOps loop's repository (tests/support/gitserver.py).
# conntrack: the request loops forget the NodePort attempts made while it had no endpoints
# (tests/cluster/nodekit.py, forget_untranslated_syns).
apt_install openssl util-linux python3 ca-certificates containerd runc \
  containernetworking-plugins iptables iproute2 git conntrack

# The machine's Go (go1.26 in /usr/local/go); tools/cluster/k8s/go.mod needs go >= 1.26.
export PATH="$PATH:/usr/local/go/bin"
if ! command -v go >/dev/null; then
  echo "cluster setup: no Go toolchain (expected /usr/local/go/bin/go); cannot build the" \
    "Kubernetes binaries" >&2
  exit 1
fi

bin="$("$root/tools/cluster/build")"
echo "cluster setup: binaries in $bin" >&2
ls "$bin" >&2

# The GitOps tests' Go builds (Flux's source- and kustomize-controller, about 8 minutes on a new
# machine; controller-gen and the CRDs it generates), here rather than inside the cluster tier,
# where they would compete with the other tiers running beside it. Cached: a second run only looks.
"$root/.venv/bin/python" - >&2 <<'PY'
import sys

sys.path[:0] = ["tests", "tests/cluster"]
import fluxkit
import gitopskit

for name in (fluxkit.SOURCE, fluxkit.KUSTOMIZE):
    print("cluster setup:", fluxkit.controller_binary(name))
print("cluster setup:", len(gitopskit.flux_crd_files()), "Flux CRDs")
PY
echo "$bin"
