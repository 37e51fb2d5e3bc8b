#!/usr/bin/env bash
# Debian's MariaDB server and client. Tests start their own mariadbd on 127.0.0.1
# (tests/support/mariadb.py); the system service is never started.
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/setup/apt.sh
apt_install mariadb-server mariadb-client
