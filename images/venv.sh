#!/bin/sh
# Builds /opt/roar, the virtualenv every ROAR image copies, in the builder stage of each
# Dockerfile. Two steps, so the dependency layer (pyproject.toml only) is cached apart from the
# source layer:
#   venv.sh deps [EXTRA...]   the package's dependencies (plus those extras), wheels only
#   venv.sh package           roar itself from /src, then the venv trimmed for a read-only root
set -eu
case "${1:-}" in
  deps)
    shift
    python3 -m venv /opt/roar
    python3 - "$@" >/tmp/requirements.txt <<'PY'
import sys
import tomllib

project = tomllib.load(open("pyproject.toml", "rb"))["project"]
extras = [dep for extra in sys.argv[1:] for dep in project["optional-dependencies"][extra]]
print("\n".join(project["dependencies"] + extras))
PY
    # Wheels only: the slim base has no compiler, and every dependency publishes wheels.
    /opt/roar/bin/pip install --only-binary=:all: -r /tmp/requirements.txt
    ;;
  package)
    # --no-deps: the dependencies are in already. Bytecode is compiled now because the
    # containers' root filesystem is read-only at run time; pip and setuptools leave the venv,
    # since nothing installs there afterwards.
    /opt/roar/bin/pip install --no-deps /src
    /opt/roar/bin/python -m pip uninstall -y -q pip setuptools
    rm -f /opt/roar/bin/activate* /opt/roar/bin/Activate.ps1
    /opt/roar/bin/python -m compileall -q -j 0 /opt/roar/lib
    /opt/roar/bin/roar --help >/dev/null
    ;;
  *)
    echo "usage: venv.sh deps [EXTRA...] | package" >&2
    exit 2
    ;;
esac
