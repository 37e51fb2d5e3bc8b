#!/usr/bin/env bash
# The project's virtualenv (.venv) with ROAR and its test and operator extras.
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/setup/apt.sh
python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' || {
  echo "setup: ROAR needs Python 3.11 or newer (found $(python3 --version))" >&2; exit 1; }
python3 -m venv --help >/dev/null 2>&1 && python3 -c 'import ensurepip' 2>/dev/null \
  || apt_install python3-venv
[[ -x .venv/bin/python ]] || python3 -m venv .venv
.venv/bin/pip install -q --upgrade pip
.venv/bin/pip install -q -e '.[test,operator]'
