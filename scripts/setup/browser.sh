#!/usr/bin/env bash
# The web tier (idempotent; root on Debian 12 or 13): Debian's Chromium, fonts that make its
# screenshots legible, and Playwright for Python (in the test extra; its wheel bundles the driver).
# Playwright drives /usr/bin/chromium: `playwright install` (a browser download) is never run,
# since only package registries are reachable.
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/setup/apt.sh
apt_install chromium fonts-dejavu-core fonts-liberation2
/usr/bin/chromium --version 2>/dev/null >&2  # its wrapper script chatters on stderr

[[ -x .venv/bin/python ]] || bash scripts/setup/python.sh
.venv/bin/python -c 'import playwright' 2>/dev/null || .venv/bin/pip install -q -e '.[test]'
echo "setup: browser ready: $(.venv/bin/python -m playwright --version), /usr/bin/chromium" >&2
