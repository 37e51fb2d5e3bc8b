#!/usr/bin/env bash
# The monitoring tier's tools: Debian's Prometheus (with promtool) and Alertmanager (with amtool),
# and the `monitoring` extra (grafana-foundation-sdk) in .venv. Tests start their own servers on
# 127.0.0.1; the packages' system services are never started.
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/setup/apt.sh
apt_install prometheus prometheus-alertmanager
# The extra's one package, pinned in pyproject.toml; pip only checks when it is already there.
.venv/bin/pip install -q -e '.[monitoring]'
