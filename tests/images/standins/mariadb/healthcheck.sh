#!/bin/bash
# Stand-in for the official MariaDB image's /usr/local/bin/healthcheck.sh (TEST FIXTURE; written
# from its documentation). Arguments are processed in order; options apply to the tests after them;
# the first failing test ends the run with exit 1.
#   options: --defaults-file=F --defaults-extra-file=F --defaults-group-suffix=S --su=USER --su-mysql
#   tests:   --connect --innodb_initialized --innodb_buffer_pool_loaded
# Without a --defaults-* option, $DATADIR/.my-healthcheck.cnf (written by the entrypoint: the
# healthcheck user, its random password, protocol=tcp) is used when it exists.
set -eo pipefail

datadir=/var/lib/mysql
def=()
[[ -r "$datadir/.my-healthcheck.cnf" ]] && def=(--defaults-extra-file="$datadir/.my-healthcheck.cnf")

query() { # sql -> first column of first row
  mariadb "${def[@]}" --skip-column-names --batch -e "$1"
}

connect() {
  local out
  # Only the TCP connection counts: an authentication error still proves the server listens.
  if out="$(mariadb "${def[@]}" --protocol=tcp -e 'SELECT 1' 2>&1)"; then return 0; fi
  [[ "$out" == *"Access denied"* ]] && return 0
  echo "healthcheck connect failed: $out" >&2
  return 1
}

innodb_initialized() {
  [[ "$(query "SELECT 1 FROM information_schema.ENGINES WHERE engine = 'innodb' \
    AND support IN ('YES', 'DEFAULT', 'ENABLED')")" == 1 ]]
}

innodb_buffer_pool_loaded() {
  [[ "$(query "SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS \
    WHERE VARIABLE_NAME = 'INNODB_BUFFER_POOL_LOAD_STATUS'")" == *"load completed"* ]]
}

if [[ $# -eq 0 ]]; then
  echo "usage: healthcheck.sh [options] --connect|--innodb_initialized|..." >&2
  exit 1
fi

while [[ $# -gt 0 ]]; do
  arg="$1"
  shift
  case "$arg" in
    --su-mysql | --su=*)
      user=mysql
      [[ "$arg" == --su=* ]] && user="${arg#--su=}"
      # Re-run the remaining arguments as that user (e.g. for unix_socket authentication).
      exec setpriv --reuid="$user" --regid="$user" --init-groups "$0" "$@"
      ;;
    --defaults-file=* | --defaults-extra-file=* | --defaults-group-suffix=*) def=("$arg") ;;
    --connect) connect ;;
    --innodb_initialized) innodb_initialized ;;
    --innodb_buffer_pool_loaded) innodb_buffer_pool_loaded ;;
    *)
      echo "healthcheck.sh (stand-in): unsupported argument $arg" >&2
      exit 1
      ;;
  esac
done
