#!/usr/bin/env bash
# PostgreSQL for dspy-flywheel: a throwaway cluster from Debian's packages, or an existing server.
#
#   ops/postgres.sh up       start (initdb the first time) and wait for pg_isready; create db flywheel
#   ops/postgres.sh down     pg_ctl stop -m fast (SIGKILL the postmaster if that fails)
#   ops/postgres.sh status   pid, port, log path, and whether the server answers
#   ops/postgres.sh env      print `export DATABASE_URL=...`
#
# With DATABASE_URL set (and not pointing at our own cluster) nothing is started: `up` and
# `status` only check that the server answers, `down` does nothing.
# Secure mode (FLYWHEEL_SECURE=1, see ops/lib.sh): ssl=on with the certificate from
# ops/secure.sh, pg_hba has hostssl lines only, scram-sha-256 passwords (superuser "postgres",
# clients log in as "flywheel", owner of database flywheel), connections logged; DATABASE_URL
# from the environment is ignored.
# Env: FLYWHEEL_PG_PORT (default: free port, kept across restarts), FLYWHEEL_STATE.
set -euo pipefail

LOG_TAG=postgres
# shellcheck source=ops/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PG_STATE="$FLYWHEEL_STATE/postgres"
PORT_FILE="$PG_STATE/port"
# The cluster directory must be reachable by the `postgres` user. When $PG_STATE is not (e.g. it
# lives under /root), the cluster lives in /var/lib/dspy-flywheel and $PG_STATE/cluster links there.
PG_CLUSTER_LINK="$PG_STATE/cluster"
PG_DB=flywheel
READY_TIMEOUT_S="${FLYWHEEL_PG_READY_TIMEOUT:-60}"

managed_url() { # managed_url PORT: what clients get in DATABASE_URL
  if is_secure; then
    echo "postgresql://$CLIENT_USER@127.0.0.1:$1/$PG_DB"
  else
    echo "postgresql://postgres@127.0.0.1:$1/$PG_DB"
  fi
}

# psql_url PORT [DB] [USER]: what ops' own psql calls use (secure: TLS verified against our CA,
# the password from $PGPASSFILE, written by write_pgpass).
psql_url() {
  local url="postgresql://${3:-postgres}@127.0.0.1:$1/${2:-postgres}"
  if is_secure; then url+="?sslmode=verify-full&sslrootcert=$TLS_DIR/ca.pem"; fi
  echo "$url"
}
if is_secure; then export PGPASSFILE="$SECRETS_DIR/pgpass"; fi

external_url() { # print DATABASE_URL when it names a server we do not manage
  local url="${DATABASE_URL:-}"
  [[ -n "$url" ]] || return 1
  is_secure && return 1
  if [[ -f "$PORT_FILE" && "$url" == "$(managed_url "$(<"$PORT_FILE")")" ]]; then
    return 1
  fi
  echo "$url"
}

pg_bin_dir() { # print the bin dir of the newest installed server (or of VERSION if given)
  local want="${1:-}" dir
  if [[ -n "$want" ]]; then
    dir="/usr/lib/postgresql/$want/bin"
    [[ -x "$dir/initdb" ]] && echo "$dir"
    return 0
  fi
  for dir in $(find /usr/lib/postgresql -maxdepth 3 -path '*/bin/initdb' 2>/dev/null | sort -V -r); do
    dirname "$dir"
    return 0
  done
}

ensure_server_packages() {
  [[ -n "$(pg_bin_dir)" ]] && return
  # Debian's postinst would otherwise create and start a "main" cluster on port 5432.
  if [[ ! -e /etc/postgresql-common/createcluster.conf && $(id -u) -eq 0 ]]; then
    mkdir -p /etc/postgresql-common
    echo "create_main_cluster = false" >/etc/postgresql-common/createcluster.conf
  fi
  apt_install postgresql
  [[ -n "$(pg_bin_dir)" ]] || die "no initdb under /usr/lib/postgresql/*/bin after installing postgresql"
}

# Clusters outside their state dir, each with an `owner` file naming its $PG_STATE.
OUTSIDE_CLUSTERS=/var/lib/dspy-flywheel

prune_orphan_clusters() { # remove stopped outside clusters whose state dir is gone
  local dir owner
  for dir in "$OUTSIDE_CLUSTERS"/pg-*; do
    [[ -f "$dir/owner" ]] || continue # made before owners were recorded: left alone
    owner="$(<"$dir/owner")"
    [[ -d "$owner" || -f "$dir/data/postmaster.pid" ]] && continue
    log "removing the cluster $dir: its state dir $owner is gone"
    rm -rf "$dir"
  done
}

cluster_dir() { # create (once) and print the cluster directory, owned by postgres
  if [[ ! -e "$PG_CLUSTER_LINK" ]]; then
    mkdir -p "$PG_STATE"
    if runuser -u postgres -- test -x "$PG_STATE" 2>/dev/null &&
      runuser -u postgres -- test -r "$PG_STATE" 2>/dev/null; then
      mkdir -p "$PG_CLUSTER_LINK"
    else
      local key
      key="$(printf '%s' "$PG_STATE" | sha1sum | cut -c1-12)"
      prune_orphan_clusters
      mkdir -p "$OUTSIDE_CLUSTERS/pg-$key"
      ln -sfn "$OUTSIDE_CLUSTERS/pg-$key" "$PG_CLUSTER_LINK"
    fi
  fi
  local dir
  dir="$(readlink -f "$PG_CLUSTER_LINK")"
  if [[ "$dir" == "$OUTSIDE_CLUSTERS"/* ]]; then
    (cd "$PG_STATE" && pwd -P) >"$dir/owner" # which state dir this cluster belongs to
  fi
  chown postgres: "$dir"
  chmod 700 "$dir"
  echo "$dir"
}

as_postgres() { runuser -u postgres -- "$@"; }

postmaster_pid() { # print the postmaster pid when our cluster runs
  local dir pid
  dir="$(readlink -f "$PG_CLUSTER_LINK" 2>/dev/null)" || return 1
  [[ -f "$dir/data/postmaster.pid" ]] || return 1
  pid="$(head -n 1 "$dir/data/postmaster.pid")"
  pid_alive "$pid" && pid_cmdline_has "$pid" "$dir/data" || return 1
  echo "$pid"
}

check_answers() { # check_answers CONNINFO: print server version or fail
  psql "$1" -X -Atq -v ON_ERROR_STOP=1 -c 'SHOW server_version' 2>&1
}

wait_ready() { # wait_ready BIN_DIR PORT
  local deadline
  deadline=$(($(date +%s) + READY_TIMEOUT_S))
  until "$1/pg_isready" -q -h 127.0.0.1 -p "$2" -d postgres -U postgres; do
    (($(date +%s) <= deadline)) || die "PostgreSQL did not become ready in ${READY_TIMEOUT_S}s"
    sleep 0.2
  done
}

init_cluster() { # init_cluster BIN_DIR DIR
  local bin="$1" dir="$2"
  log "initdb in $dir/data"
  if is_secure; then
    # The superuser's password reaches initdb in a file only the postgres user can read.
    local pwfile="$dir/initdb.pw"
    (umask 077 && read_secret pg-postgres >"$pwfile")
    chown postgres: "$pwfile"
    local rc=0
    as_postgres "$bin/initdb" -D "$dir/data" -U postgres --auth=scram-sha-256 \
      --pwfile="$pwfile" -E UTF8 --no-locale --no-sync >"$dir/initdb.log" 2>&1 || rc=$?
    rm -f "$pwfile"
    ((rc == 0)) || die "initdb failed; see $dir/initdb.log"
    secrets_id >"$dir/secrets.id"
    # TLS and a password for everyone, only over TCP from 127.0.0.1; no unix sockets.
    echo "hostssl all all 127.0.0.1/32 scram-sha-256" >"$dir/data/pg_hba.conf"
  else
    as_postgres "$bin/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 --no-locale \
      --no-sync >"$dir/initdb.log" 2>&1 || die "initdb failed; see $dir/initdb.log"
    # Trust, but only over TCP from 127.0.0.1; no unix sockets, no other hosts.
    echo "host all all 127.0.0.1/32 trust" >"$dir/data/pg_hba.conf"
  fi
  echo "include_if_exists = 'flywheel.conf'" >>"$dir/data/postgresql.conf"
}

# secrets_id: a fingerprint (sha256) of the superuser password the cluster was made with; a new
# password means the state dir was reset and the throwaway cluster outside it must go too.
secrets_id() { sha256sum <"$SECRETS_DIR/pg-postgres" | cut -d' ' -f1; }

drop_stale_cluster() { # drop_stale_cluster BIN DIR: remove a secure cluster made with other passwords
  [[ -f "$2/data/PG_VERSION" ]] || return 0
  [[ "$(cat "$2/secrets.id" 2>/dev/null)" != "$(secrets_id)" ]] || return 0
  log "the cluster in $2 was made with other passwords ($SECRETS_DIR was reset): recreating it"
  if postmaster_pid >/dev/null; then
    as_postgres "$1/pg_ctl" -D "$2/data" -s -m fast -w -t 30 stop || die "cannot stop the old cluster"
  fi
  rm -rf "$2/data" "$2/secrets.id"
}

write_pgpass() { # write_pgpass PORT: ops' psql logins (secure mode), 0600
  rm -f "$PGPASSFILE"
  (
    umask 077
    {
      printf '127.0.0.1:%s:*:postgres:%s\n' "$1" "$(read_secret pg-postgres)"
      printf '127.0.0.1:%s:*:%s:%s\n' "$1" "$CLIENT_USER" "$(read_secret pg-client)"
    } >"$PGPASSFILE"
  )
}

install_tls() { # install_tls DIR: the server certificate and key, readable by postgres only
  local name
  for name in crt key; do
    install -m 600 -o postgres -g postgres "$TLS_DIR/postgres.$name" "$1/data/server.$name"
  done
}

ensure_client_role() { # ensure_client_role PORT: login role $CLIENT_USER with the current password
  local verifier
  verifier="$(python3 "$OPS_DIR/postgres/scram_verifier.py" "$SECRETS_DIR/pg-client")"
  # SQL on stdin, password as its scram verifier: neither argv nor the server log see it.
  psql "$(psql_url "$1")" -X -q -v ON_ERROR_STOP=1 >/dev/null <<SQL
DO \$\$BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '$CLIENT_USER') THEN
    CREATE ROLE $CLIENT_USER LOGIN;
  END IF;
END\$\$;
ALTER ROLE $CLIENT_USER WITH LOGIN PASSWORD '$verifier';
SQL
}

write_config() { # write_config DIR PORT
  # Throwaway cluster: durability settings traded for speed (tests start from scratch anyway).
  cat >"$1/data/flywheel.conf" <<EOF
# Written by ops/postgres.sh on every start.
listen_addresses = '127.0.0.1'
cluster_name = '$(pg_cluster_name)'
port = $2
unix_socket_directories = ''
max_connections = 200
fsync = off
synchronous_commit = off
full_page_writes = off
EOF
  if is_secure; then
    install_tls "$1"
    cat >>"$1/data/flywheel.conf" <<EOF
# Secure mode: TLS only (pg_hba.conf has hostssl lines only), scram-sha-256 passwords.
ssl = on
ssl_cert_file = 'server.crt'
ssl_key_file = 'server.key'
ssl_min_protocol_version = 'TLSv1.2'
password_encryption = 'scram-sha-256'
log_connections = on
EOF
  fi
  chown postgres: "$1/data/flywheel.conf"
}

cmd_up() {
  local started url version
  started="$(now_s)"
  if url="$(external_url)"; then
    need psql postgresql-client
    version="$(check_answers "$url")" || die "DATABASE_URL does not answer: $version"
    log "using existing PostgreSQL $version from DATABASE_URL ($(elapsed_since "$started")s)"
    return
  fi
  ensure_server_packages
  claim_mode
  ensure_secure_material
  local dir bin port pid
  dir="$(cluster_dir)"
  if [[ -f "$dir/data/PG_VERSION" ]]; then
    bin="$(pg_bin_dir "$(<"$dir/data/PG_VERSION")")"
    if [[ -z "$bin" ]]; then
      log "cluster in $dir was made by PostgreSQL $(<"$dir/data/PG_VERSION"), not installed; recreating"
      postmaster_pid >/dev/null && die "old cluster still running; stop it first"
      rm -rf "$dir/data"
    fi
  fi
  if is_secure; then drop_stale_cluster "$(pg_bin_dir)" "$dir"; fi
  [[ -f "$dir/data/PG_VERSION" ]] || init_cluster "$(pg_bin_dir)" "$dir"
  bin="$(pg_bin_dir "$(<"$dir/data/PG_VERSION")")"
  if pid="$(postmaster_pid)"; then
    port="$(<"$PORT_FILE")"
    if [[ -n "${FLYWHEEL_PG_PORT:-}" && "$FLYWHEEL_PG_PORT" != "$port" ]]; then
      log "WARNING: running on port $port, not FLYWHEEL_PG_PORT=$FLYWHEEL_PG_PORT (down + up to move it)"
    fi
  else
    port="$(choose_port "${FLYWHEEL_PG_PORT:-}" "$PORT_FILE")"
    port_in_use "$port" && die "port $port is already in use (FLYWHEEL_PG_PORT?)"
    write_config "$dir" "$port"
    echo "$port" >"$PORT_FILE"
    log "starting PostgreSQL on 127.0.0.1:$port (log: $dir/postgres.log)"
    as_postgres "$bin/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -s -w -t "$READY_TIMEOUT_S" \
      start 9>&- || { tail -n 20 "$dir/postgres.log" >&2; die "pg_ctl start failed; log: $dir/postgres.log"; }
  fi
  if is_secure; then write_pgpass "$port"; fi
  wait_ready "$bin" "$port"
  local admin owner=postgres
  admin="$(psql_url "$port")"
  if is_secure; then
    ensure_client_role "$port"
    owner="$CLIENT_USER"
  fi
  if [[ "$(psql "$admin" -X -Atq -c "SELECT 1 FROM pg_database WHERE datname = '$PG_DB'")" != 1 ]]; then
    psql "$admin" -X -q -v ON_ERROR_STOP=1 -c "CREATE DATABASE $PG_DB OWNER $owner" >/dev/null
    log "created database $PG_DB (owner $owner)"
  fi
  version="$(check_answers "$(psql_url "$port" "$PG_DB" "$owner")")" ||
    die "database $PG_DB does not answer: $version"
  log "PostgreSQL $version up: pid $(postmaster_pid), 127.0.0.1:$port ($(elapsed_since "$started")s)"
}

cmd_down() {
  if external_url >/dev/null; then
    log "DATABASE_URL names an external server; nothing to stop"
    return
  fi
  local pid dir bin
  if pid="$(postmaster_pid)"; then
    dir="$(readlink -f "$PG_CLUSTER_LINK")"
    bin="$(pg_bin_dir "$(<"$dir/data/PG_VERSION")")"
    log "stopping PostgreSQL (pid $pid)"
    as_postgres "$bin/pg_ctl" -D "$dir/data" -s -m fast -w -t 30 stop ||
      stop_pid "$pid" "postmaster" 10
    while pid_alive "$pid"; do sleep 0.1; done
  fi
  log "PostgreSQL stopped"
}

cmd_status() {
  local url version pid dir port
  if url="$(external_url)"; then
    if version="$(check_answers "$url")"; then
      echo "postgres: external DATABASE_URL answers (PostgreSQL $version)"
      return 0
    fi
    echo "postgres: external DATABASE_URL does NOT answer: $version"
    return 1
  fi
  dir="$(readlink -f "$PG_CLUSTER_LINK" 2>/dev/null || echo "$PG_CLUSTER_LINK")"
  port="$(cat "$PORT_FILE" 2>/dev/null || echo '?')"
  if pid="$(postmaster_pid)"; then
    if version="$(check_answers "$(psql_url "$port" "$PG_DB")")"; then
      echo "postgres: running pid=$pid port=$port version=$version $(transport) answers=yes"
    else
      echo "postgres: running pid=$pid port=$port answers=NO ($version)"
    fi
  else
    echo "postgres: stopped"
  fi
  echo "postgres: log=$dir/postgres.log data=$dir/data"
  [[ -n "${pid:-}" ]]
}

transport() { # how clients must connect, as configured
  if is_secure; then echo "ssl=on hba=hostssl-only auth=scram-sha-256"; else echo "ssl=off auth=trust"; fi
}

cmd_version() { # the server version, or ? when it does not answer
  local url
  url="$(external_url)" || url="$(psql_url "$(cat "$PORT_FILE" 2>/dev/null)" "$PG_DB")"
  psql "$url" -X -Atq -c 'SHOW server_version' 2>/dev/null || echo '?'
}

cmd_env() {
  local url
  if url="$(external_url)"; then
    printf 'export DATABASE_URL=%q\n' "$url"
    return
  fi
  postmaster_pid >/dev/null || die "PostgreSQL is not running; run: ops/stack up"
  echo "export DATABASE_URL=$(managed_url "$(<"$PORT_FILE")")"
}

case "${1:-}" in
  up) take_lock postgres && cmd_up ;;
  down) take_lock postgres && cmd_down ;;
  status) cmd_status ;;
  env) cmd_env ;;
  version) cmd_version ;;
  *) die "usage: $0 up|down|status|env|version" ;;
esac
