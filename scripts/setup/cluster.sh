#!/usr/bin/env bash
# Installer for the cluster test tier (idempotent; root on Debian 12 or 13): the few Debian
# packages it needs, then the control-plane binaries built from Go modules by tools/cluster/build,
# or reused from ${ROAR_CACHE_DIR:-/var/cache/roar}/cluster when this recipe was built before.
# A cold build takes a long while on 2 cores (see docs/cluster.md); later runs take a second.
# Prints the bin dir as its last line.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"

missing=()
command -v openssl >/dev/null || missing+=(openssl)  # certificates for `tools/cluster/up`
command -v flock >/dev/null || missing+=(util-linux)  # serialises concurrent builds
command -v python3 >/dev/null || missing+=(python3)  # tools/cluster/cluster.py
[[ -e /etc/ssl/certs/ca-certificates.crt ]] || missing+=(ca-certificates)  # the module proxy
if ((${#missing[@]})); then
  echo "cluster setup: installing ${missing[*]}" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi

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
echo "$bin"
