#!/usr/bin/env bash
# Builds local stand-ins for the official base images that ROAR's Dockerfiles name, so that the
# unchanged Dockerfiles build with `--pull=never` on a machine that reaches no container registry.
# TEST FIXTURES ONLY: nothing here is shipped, and the Dockerfiles keep naming the real images.
#
#   tests/images/standins/build.sh [python|mariadb|all]   (default: all)
#
# Each stand-in is a debootstrapped Debian root filesystem, shaped to honour the part of the
# official image's documented contract that ROAR relies on, then `podman import`ed under the
# official name. Two caches keep a second run cheap:
#   - the podman image store (an image whose label roar.standin.recipe matches is reused);
#   - ${ROAR_CACHE_DIR:-/var/cache/roar}/standins/<name>-<recipe hash>.tar (the finished rootfs),
#     so a wiped image store re-imports in seconds instead of debootstrapping again.
# The recipe hash covers this script, the files beside it and the host CA certificates.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CACHE="${ROAR_CACHE_DIR:-/var/cache/roar}/standins"

# The official names (pinned tags) the Dockerfiles use; the Debian suite each stand-in is built
# from. python:3.11-slim-bookworm is Debian bookworm with CPython 3.11, which is exactly what
# bookworm's own python3 is; mariadb:11.8 matches the MariaDB 11.8 that trixie ships.
PYTHON_TAG="docker.io/library/python:3.11-slim-bookworm"
PYTHON_SUITE="bookworm"
MARIADB_TAG="docker.io/library/mariadb:11.8"
MARIADB_SUITE="trixie"

log() { printf '[standins] %s\n' "$*" >&2; }

# The Debian archive to debootstrap from: ROAR_DEBIAN_MIRROR, else the first source of this
# machine's own apt configuration (deb822 `URIs:` first, then a one-line `deb` entry), so the
# stand-ins come from wherever this machine already gets its packages.
debian_mirror() {
  local uri="${ROAR_DEBIAN_MIRROR:-}" file
  # awk reads each file itself: with pipefail, a pipe into an awk that exits early could fail.
  for file in /etc/apt/sources.list.d/*.sources; do
    if [[ -n "$uri" ]]; then break; fi
    if [[ -r "$file" ]]; then uri="$(awk 'tolower($1) == "uris:" { print $2; exit }' "$file")"; fi
  done
  if [[ -z "$uri" && -r /etc/apt/sources.list ]]; then
    # `deb [options] URI suite component...`: the options, if any, are dropped first.
    uri="$(awk '{ sub(/\[[^]]*\]/, "") } $1 == "deb" { print $2; exit }' /etc/apt/sources.list)"
  fi
  if [[ -z "$uri" ]]; then
    log "no Debian source in /etc/apt/sources.list.d/*.sources or /etc/apt/sources.list;" \
      "set ROAR_DEBIAN_MIRROR"
    return 1
  fi
  printf '%s\n' "$uri"
}

# hash FILE...: the recipe of one artefact, with the host CA (it is baked into the python base).
recipe_hash() {
  {
    cat "${BASH_SOURCE[0]}" "$@"
    cat /usr/local/share/ca-certificates/*.crt 2>/dev/null || true
  } | sha256sum | cut -c1-16
}

image_is_current() { # tag hash
  local got
  got="$(podman image inspect "$1" --format '{{index .Labels "roar.standin.recipe"}}' 2>/dev/null)" \
    || return 1
  [[ "$got" == "$2" ]]
}

clean_rootfs() { # rootfs: what the official slim images also leave out
  local r="$1"
  chroot "$r" apt-get clean
  rm -rf "$r"/var/lib/apt/lists/* "$r"/var/cache/apt/*.bin "$r"/var/cache/debconf/*-old \
    "$r"/var/log/*.log "$r"/var/log/apt/* "$r"/usr/share/doc/* "$r"/usr/share/man/* \
    "$r"/usr/share/info/* "$r"/tmp/* "$r"/root/.cache
}

debootstrap_into() { # suite rootfs include-list
  mkdir -p "$CACHE/debs"
  local logf="${2%/*}/debootstrap.log" mirror
  mirror="$(debian_mirror)"
  log "debootstrap $1 from $mirror"
  if ! debootstrap --variant=minbase --cache-dir="$CACHE/debs" --include="$3" "$1" "$2" \
    "$mirror" >"$logf" 2>&1; then
    tail -n 30 "$logf" >&2
    log "debootstrap $1 failed (log: $logf)"
    return 1
  fi
}

build_python_rootfs() { # rootfs
  local r="$1"
  debootstrap_into "$PYTHON_SUITE" "$r" python3,python3-pip,python3-venv,ca-certificates
  # Builds reach PyPI through a TLS-intercepting proxy: trust its CA inside the image.
  cp /usr/local/share/ca-certificates/*.crt "$r/usr/local/share/ca-certificates/" 2>/dev/null \
    || true
  chroot "$r" update-ca-certificates >/dev/null 2>&1
  # The official image's python is not Debian-managed: pip installs freely, and the
  # interpreter, pip and venv answer to the /usr/local/bin names.
  rm -f "$r"/usr/lib/python3*/EXTERNALLY-MANAGED
  local n
  for n in python3 python; do ln -sf /usr/bin/python3 "$r/usr/local/bin/$n"; done
  for n in pip3 pip; do ln -sf /usr/bin/pip3 "$r/usr/local/bin/$n"; done
  clean_rootfs "$r"
}

build_mariadb_rootfs() { # rootfs
  local r="$1"
  debootstrap_into "$MARIADB_SUITE" "$r" mariadb-server,mariadb-client,ca-certificates,tzdata
  # The official image's mysql user is 999:999 (Kubernetes fsGroup examples rely on it).
  chroot "$r" sh -ec 'groupmod -g 999 mysql; usermod -u 999 -g 999 -d /var/lib/mysql mysql' >&2
  # Empty data dir: the entrypoint initialises it on first start, as the official image does.
  rm -rf "$r"/var/lib/mysql "$r"/run/mysqld
  mkdir -p "$r"/var/lib/mysql "$r"/run/mysqld "$r"/docker-entrypoint-initdb.d
  chroot "$r" chown -R mysql:mysql /var/lib/mysql /run/mysqld
  chmod 1777 "$r"/run/mysqld
  # The official MariaDB 11 images no longer ship the mysql* command names; nor does the stand-in.
  find "$r/usr/bin" "$r/usr/sbin" -maxdepth 1 -name 'mysql*' -type l -delete
  # Listen on all interfaces inside the container (Debian binds 127.0.0.1 by default).
  sed -i -e 's/^\(bind-address\)/#&/' "$r"/etc/mysql/mariadb.conf.d/50-server.cnf
  clean_rootfs "$r"
}

# The image's own files, added on top of the cached rootfs at import time, so that changing them
# re-imports in seconds instead of debootstrapping again.
overlay_mariadb() { # stage-dir
  install -D -m 0644 "$HERE/mariadb/docker.cnf" "$1/etc/mysql/conf.d/docker.cnf"
  install -D -m 0755 "$HERE/mariadb/docker-entrypoint.sh" "$1/usr/local/bin/docker-entrypoint.sh"
  install -D -m 0755 "$HERE/mariadb/healthcheck.sh" "$1/usr/local/bin/healthcheck.sh"
}

ensure() { # name
  local name="$1" tag base_hash hash tarball work
  case "$name" in
    python) tag="$PYTHON_TAG" ;;
    mariadb) tag="$MARIADB_TAG" ;;
    *) log "unknown stand-in: $name"; return 2 ;;
  esac
  base_hash="$(recipe_hash)"
  local -a own=()
  [[ -d "$HERE/$name" ]] && mapfile -t own < <(find "$HERE/$name" -type f | sort)
  hash="$(recipe_hash "${own[@]}")"
  if image_is_current "$tag" "$hash"; then
    log "$tag: current (recipe $hash)"
    return 0
  fi
  tarball="$CACHE/$name-$base_hash.tar"
  if [[ ! -s "$tarball" ]]; then
    log "$tag: debootstrapping (base recipe $base_hash; a few minutes)"
    rm -rf "$CACHE/work/$name-"*
    work="$CACHE/work/$name-$base_hash"
    mkdir -p "$work"
    "build_${name}_rootfs" "$work/rootfs"
    tar --numeric-owner -C "$work/rootfs" -cf "$tarball.tmp" .
    mv "$tarball.tmp" "$tarball"
    rm -rf "$work"
    # Older recipes' tarballs are dead weight once a new one exists.
    find "$CACHE" -maxdepth 1 -name "$name-*.tar" ! -name "$name-$base_hash.tar" -delete
  fi
  local import="$tarball"
  if declare -F "overlay_$name" >/dev/null; then
    work="$(mktemp -d "$CACHE/overlay.XXXXXX")"
    "overlay_$name" "$work/stage"
    cp "$tarball" "$work/image.tar"
    # Files only, each replacing any same path (image layers may not hold duplicate paths).
    local -a files
    mapfile -t files < <(cd "$work/stage" && find . -type f | sort)
    tar --delete -f "$work/image.tar" "${files[@]}" 2>/dev/null || true
    tar --numeric-owner --owner=0 --group=0 --no-recursion -rf "$work/image.tar" \
      -C "$work/stage" "${files[@]}"
    import="$work/image.tar"
  fi
  log "$tag: importing $import"
  local -a change=(--change "LABEL roar.standin.recipe=$hash"
    --change "LABEL roar.standin.note=local-test-stand-in-not-the-official-image"
    --change "ENV LANG=C.UTF-8"
    --change "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
  case "$name" in
    python) change+=(--change 'CMD ["python3"]') ;;
    mariadb)
      change+=(--change 'ENTRYPOINT ["docker-entrypoint.sh"]' --change 'CMD ["mariadbd"]'
        --change 'EXPOSE 3306' --change 'VOLUME /var/lib/mysql' --change 'STOPSIGNAL SIGTERM')
      ;;
  esac
  podman import "${change[@]}" "$import" "$tag" >/dev/null
  [[ "$import" == "$tarball" ]] || rm -rf "$work"
  log "$tag: ready"
}

main() {
  local what="${1:-all}"
  mkdir -p "$CACHE"
  # One builder at a time per cache (tests and scripts/setup may race).
  exec 9>"$CACHE/.lock"
  flock 9
  case "$what" in
    all) ensure python; ensure mariadb ;;
    *) ensure "$what" ;;
  esac
}

# Sourcing the script (to call one function, e.g. debian_mirror) builds nothing.
if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
  main "$@"
fi
