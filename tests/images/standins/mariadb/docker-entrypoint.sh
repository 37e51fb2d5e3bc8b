#!/bin/bash
# Stand-in for the official MariaDB image's entrypoint (TEST FIXTURE; written from the image's
# documentation, not copied). The contract honoured:
#   - MARIADB_* variables, with the MYSQL_* names as fallbacks, and *_FILE variants of each;
#   - one of MARIADB_ROOT_PASSWORD(_HASH) / MARIADB_ALLOW_EMPTY_ROOT_PASSWORD /
#     MARIADB_RANDOM_ROOT_PASSWORD required on an empty data dir; MARIADB_ROOT_HOST (default %);
#   - MARIADB_DATABASE, MARIADB_USER + MARIADB_PASSWORD(_HASH) (ALL on that database);
#   - healthcheck@localhost/127.0.0.1/::1 users with a random password in
#     $DATADIR/.my-healthcheck.cnf, read by healthcheck.sh;
#   - /docker-entrypoint-initdb.d/*.sh (executable: run, else sourced), *.sql, *.sql.gz|xz|zst,
#     in name order, once, only when the data dir is empty; SQL runs as root in MARIADB_DATABASE;
#   - data in /var/lib/mysql; mariadbd ends up as PID 1 under the mysql user (exec), so SIGTERM
#     reaches the server directly and it shuts down cleanly.
set -eo pipefail
shopt -s nullglob

log() { printf '%s %s [Entrypoint]: %s\n' "$(date --rfc-3339=seconds)" "$1" "$2"; }
note() { log Note "$*"; }
warn() { log Warn "$*" >&2; }
die() { log ERROR "$*" >&2; exit 1; }

# file_env VAR [DEFAULT]: VAR from $VAR or from the file named by $VAR_FILE (not both).
file_env() {
  local var="$1" fvar="${1}_FILE" val
  val="${2:-}"
  if [[ -n "${!var:-}" && -n "${!fvar:-}" ]]; then
    die "both $var and $fvar are set (but are exclusive)"
  fi
  if [[ -n "${!var:-}" ]]; then
    val="${!var}"
  elif [[ -n "${!fvar:-}" ]]; then
    val="$(<"${!fvar}")"
  fi
  export "$var"="$val"
  unset "$fvar"
}

# mariadb_env NAME [DEFAULT]: MARIADB_NAME, falling back to MYSQL_NAME (each with _FILE).
mariadb_env() {
  local name="$1"
  file_env "MYSQL_$name" "${2:-}"
  local mysql_var="MYSQL_$name"
  file_env "MARIADB_$name" "${!mysql_var}"
}

# A setting of the server as configured (my.cnf plus the command line).
server_setting() { # key server-command...
  local key="$1"
  shift
  "$@" --verbose --help 2>/dev/null | awk -v k="$key" 'index($0, k " ") == 1 { print $2; exit }'
}

setup_env() {
  DATADIR="$(server_setting datadir "$@")"
  SOCKET="$(server_setting socket "$@")"
  PORT="$(server_setting port "$@")"
  DATADIR="${DATADIR:-/var/lib/mysql/}"
  SOCKET="${SOCKET:-/run/mysqld/mysqld.sock}"
  PORT="${PORT:-3306}"
  mariadb_env ROOT_HOST '%'
  mariadb_env DATABASE
  mariadb_env USER
  mariadb_env PASSWORD
  file_env MARIADB_PASSWORD_HASH
  mariadb_env ROOT_PASSWORD
  file_env MARIADB_ROOT_PASSWORD_HASH
  # The empty-password and random-password switches: MYSQL_ALLOW_EMPTY_PASSWORD is the old name.
  file_env MYSQL_ALLOW_EMPTY_PASSWORD
  file_env MARIADB_ALLOW_EMPTY_ROOT_PASSWORD "$MYSQL_ALLOW_EMPTY_PASSWORD"
  mariadb_env RANDOM_ROOT_PASSWORD
  mariadb_env INITDB_SKIP_TZINFO
  DATABASE_ALREADY_EXISTS=
  [[ -d "$DATADIR/mysql" ]] && DATABASE_ALREADY_EXISTS=true
  return 0
}

verify_minimum_env() {
  if [[ -z "$MARIADB_ROOT_PASSWORD" && -z "$MARIADB_ROOT_PASSWORD_HASH" \
    && -z "$MARIADB_ALLOW_EMPTY_ROOT_PASSWORD" && -z "$MARIADB_RANDOM_ROOT_PASSWORD" ]]; then
    die "Database is uninitialized and password option is not specified
	You need to specify one of MARIADB_ROOT_PASSWORD, MARIADB_ROOT_PASSWORD_HASH, MARIADB_ALLOW_EMPTY_ROOT_PASSWORD and MARIADB_RANDOM_ROOT_PASSWORD"
  fi
  if [[ -n "$MARIADB_USER" && "$MARIADB_USER" == root ]]; then
    die "MARIADB_USER=root: use MARIADB_ROOT_PASSWORD for the root user"
  fi
  if [[ -n "$MARIADB_USER" && -z "$MARIADB_PASSWORD" && -z "$MARIADB_PASSWORD_HASH" ]]; then
    warn "MARIADB_USER set but no MARIADB_PASSWORD: that user will have no password"
  fi
}

# SQL through the socket as root; once root has a password it is read from a mode-600 file that
# exists only during initialisation, never from the command line.
process_sql() {
  local -a opts=()
  [[ -n "${ROOT_CNF:-}" ]] && opts+=(--defaults-extra-file="$ROOT_CNF")
  mariadb "${opts[@]}" --protocol=socket -uroot -hlocalhost --socket="$SOCKET" \
    --comments --binary-mode "$@"
}

sql_escape() { sed -e "s/\\\\/\\\\\\\\/g" -e "s/'/\\\\'/g" <<<"$1"; }

temp_server_start() {
  "$@" --skip-networking --default-time-zone=SYSTEM --socket="$SOCKET" --wsrep_on=OFF \
    --skip-log-bin --loose-innodb_buffer_pool_load_at_startup=0 &
  TEMP_PID=$!
  local i
  for i in $(seq 60); do
    if process_sql --database=mysql -e 'SELECT 1' >/dev/null 2>&1; then return 0; fi
    kill -0 "$TEMP_PID" 2>/dev/null || die "temporary server failed to start"
    sleep 0.5
  done
  die "temporary server did not answer within 30 s"
}

temp_server_stop() {
  kill -TERM "$TEMP_PID"
  wait "$TEMP_PID" || die "temporary server did not stop cleanly"
}

init_database_dir() {
  note "Initializing database files"
  mariadb-install-db --datadir="$DATADIR" --rpm --auth-root-authentication-method=normal \
    --skip-test-db --default-time-zone=SYSTEM --skip-log-bin --expire-logs-days=0 \
    --loose-innodb_buffer_pool_load_at_startup=0 --loose-innodb_buffer_pool_dump_at_shutdown=0 \
    "${@:2}" >/dev/null
  note "Database files initialized"
}

setup_db() {
  if [[ -z "$MARIADB_INITDB_SKIP_TZINFO" && -d /usr/share/zoneinfo ]]; then
    # --skip-write-binlog keeps the tz tables out of any binary log.
    mariadb-tzinfo-to-sql --skip-write-binlog /usr/share/zoneinfo 2>/dev/null \
      | process_sql --database=mysql
  fi
  if [[ -n "$MARIADB_RANDOM_ROOT_PASSWORD" ]]; then
    MARIADB_ROOT_PASSWORD="$(head -c 24 /dev/urandom | base64 | tr -d '/+=' | head -c 32)"
    note "GENERATED ROOT PASSWORD: $MARIADB_ROOT_PASSWORD"
  fi
  local root_auth="" user_auth="" root_host_sql="" db_sql="" user_sql="" hc_pw
  if [[ -n "$MARIADB_ROOT_PASSWORD_HASH" ]]; then
    root_auth="IDENTIFIED BY PASSWORD '$(sql_escape "$MARIADB_ROOT_PASSWORD_HASH")'"
  elif [[ -n "$MARIADB_ROOT_PASSWORD" ]]; then
    root_auth="IDENTIFIED BY '$(sql_escape "$MARIADB_ROOT_PASSWORD")'"
  fi
  if [[ "$MARIADB_ROOT_HOST" != localhost ]]; then
    local rh
    rh="$(sql_escape "$MARIADB_ROOT_HOST")"
    root_host_sql="CREATE USER 'root'@'$rh' $root_auth;
      GRANT ALL ON *.* TO 'root'@'$rh' WITH GRANT OPTION;
      GRANT PROXY ON ''@'%' TO 'root'@'$rh' WITH GRANT OPTION;"
  fi
  hc_pw="$(head -c 24 /dev/urandom | base64 | tr -d '/+=' | head -c 32)"
  if [[ -n "$MARIADB_DATABASE" ]]; then
    note "Creating database ${MARIADB_DATABASE}"
    db_sql="CREATE DATABASE IF NOT EXISTS \`${MARIADB_DATABASE//\`/\`\`}\`;"
  fi
  if [[ -n "$MARIADB_USER" ]]; then
    note "Creating user ${MARIADB_USER}"
    if [[ -n "$MARIADB_PASSWORD_HASH" ]]; then
      user_auth="IDENTIFIED BY PASSWORD '$(sql_escape "$MARIADB_PASSWORD_HASH")'"
    elif [[ -n "$MARIADB_PASSWORD" ]]; then
      user_auth="IDENTIFIED BY '$(sql_escape "$MARIADB_PASSWORD")'"
    fi
    local u
    u="$(sql_escape "$MARIADB_USER")"
    user_sql="CREATE USER '$u'@'%' $user_auth;"
    if [[ -n "$MARIADB_DATABASE" ]]; then
      note "Giving user ${MARIADB_USER} access to schema ${MARIADB_DATABASE}"
      user_sql+="GRANT ALL ON \`${MARIADB_DATABASE//\`/\`\`}\`.* TO '$u'@'%';"
    fi
  fi
  note "Securing system users (equivalent to running mysql_secure_installation)"
  process_sql --database=mysql <<-EOSQL
	SET @@SESSION.SQL_LOG_BIN=0;
	SET @@SESSION.SQL_MODE=REPLACE(@@SESSION.SQL_MODE, 'NO_BACKSLASH_ESCAPES', '');
	DROP USER IF EXISTS root@'127.0.0.1', root@'::1';
	EXECUTE IMMEDIATE CONCAT('DROP USER IF EXISTS root@\'', @@hostname,'\'');
	DROP USER IF EXISTS ''@'localhost';
	EXECUTE IMMEDIATE CONCAT('DROP USER IF EXISTS \'\'@\'', @@hostname,'\'');
	ALTER USER 'root'@'localhost' $root_auth;
	$root_host_sql
	CREATE USER 'healthcheck'@'127.0.0.1' IDENTIFIED BY '$hc_pw';
	CREATE USER 'healthcheck'@'::1' IDENTIFIED BY '$hc_pw';
	CREATE USER 'healthcheck'@'localhost' IDENTIFIED BY '$hc_pw';
	$db_sql
	$user_sql
	EOSQL
  umask 077
  printf '[mariadb-client]\nport=%s\nsocket=%s\nuser=healthcheck\npassword=%s\nprotocol=tcp\n' \
    "$PORT" "$SOCKET" "$hc_pw" >"$DATADIR/.my-healthcheck.cnf"
  if [[ -n "$MARIADB_ROOT_PASSWORD" ]]; then
    ROOT_CNF="$(mktemp /run/mysqld/.root-XXXXXX.cnf)"
    printf '[client]\npassword="%s"\n' "${MARIADB_ROOT_PASSWORD//\"/\\\"}" >"$ROOT_CNF"
  fi
  umask 022
}

process_init_files() {
  local f db_opt=()
  [[ -n "$MARIADB_DATABASE" ]] && db_opt=(--database="$MARIADB_DATABASE")
  for f in /docker-entrypoint-initdb.d/*; do
    case "$f" in
      *.sh)
        if [[ -x "$f" ]]; then
          note "$0: running $f"; "$f"
        else
          note "$0: sourcing $f"; . "$f"
        fi
        ;;
      *.sql) note "$0: running $f"; process_sql "${db_opt[@]}" <"$f" ;;
      *.sql.gz) note "$0: running $f"; gunzip -c "$f" | process_sql "${db_opt[@]}" ;;
      *.sql.xz) note "$0: running $f"; xzcat "$f" | process_sql "${db_opt[@]}" ;;
      *.sql.zst) note "$0: running $f"; zstd -dc "$f" | process_sql "${db_opt[@]}" ;;
      *) warn "$0: ignoring $f" ;;
    esac
  done
}

main() {
  # Options only: they are for the server.
  if [[ "${1:0:1}" == '-' ]]; then set -- mariadbd "$@"; fi
  if [[ "$1" != mariadbd && "$1" != mysqld ]]; then exec "$@"; fi

  note "Entrypoint script for MariaDB Server (ROAR test stand-in) started."
  setup_env "$@"
  if [[ "$(id -u)" == 0 ]]; then
    # Root only prepares ownership, then re-executes as mysql.
    mkdir -p "$DATADIR" /run/mysqld
    find "$DATADIR" /run/mysqld \! -user mysql -exec chown mysql:mysql '{}' +
    note "Switching to dedicated user 'mysql'"
    exec setpriv --reuid=mysql --regid=mysql --init-groups "${BASH_SOURCE[0]}" "$@"
  fi

  if [[ -z "$DATABASE_ALREADY_EXISTS" ]]; then
    verify_minimum_env
    ls /docker-entrypoint-initdb.d/ >/dev/null
    init_database_dir "$@"
    note "Starting temporary server"
    temp_server_start "$@"
    note "Temporary server started."
    setup_db
    process_init_files
    note "Stopping temporary server"
    temp_server_stop
    [[ -n "${ROOT_CNF:-}" ]] && rm -f "$ROOT_CNF"
    unset ROOT_CNF
    note "Temporary server stopped"
    echo
    note "MariaDB init process done. Ready for start up."
    echo
  fi
  exec "$@"
}

main "$@"
