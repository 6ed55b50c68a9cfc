# shellcheck shell=bash
# Shared helpers for the ops/ scripts. Source it; do not run it.
#
# Layout (all outside the repository):
#   $FLYWHEEL_HOME   (default ~/.cache/dspy-flywheel)   download caches (Kafka jars)
#   $FLYWHEEL_STATE  (default $FLYWHEEL_HOME/run,       runtime state: data, logs, pids, ports
#                     $FLYWHEEL_HOME/secure in secure mode)
#
# Secure mode (FLYWHEEL_SECURE=1, or `ops/stack ... --secure`): Kafka with a SASL_SSL listener
# only (SCRAM-SHA-512) and PostgreSQL with hostssl + scram-sha-256 only, certificates from a
# throwaway CA in $FLYWHEEL_STATE/tls, passwords in $FLYWHEEL_STATE/secrets (ops/secure.sh).
# A state dir holds one kind of stack; $FLYWHEEL_STATE/mode records which.

FLYWHEEL_HOME="${FLYWHEEL_HOME:-$HOME/.cache/dspy-flywheel}"
FLYWHEEL_SECURE="${FLYWHEEL_SECURE:-0}"
if [[ -z "${FLYWHEEL_STATE:-}" ]]; then
  if [[ "$FLYWHEEL_SECURE" == 1 ]]; then
    FLYWHEEL_STATE="$FLYWHEEL_HOME/secure"
  else
    FLYWHEEL_STATE="$FLYWHEEL_HOME/run"
  fi
fi
# shellcheck disable=SC2034  # used by the scripts that source this file
OPS_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
export FLYWHEEL_HOME FLYWHEEL_STATE FLYWHEEL_SECURE
# shellcheck disable=SC2034  # used by the scripts that source this file
TLS_DIR="$FLYWHEEL_STATE/tls"
# shellcheck disable=SC2034
SECRETS_DIR="$FLYWHEEL_STATE/secrets"
# shellcheck disable=SC2034
CLIENT_USER=flywheel  # the user clients log in as, to Kafka and to PostgreSQL, in secure mode

log() { printf '[%s] %s\n' "${LOG_TAG:-ops}" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

now_s() { date +%s.%N; }
elapsed_since() { awk -v a="$1" -v b="$(now_s)" 'BEGIN { printf "%.1f", b - a }'; }

# apt_install PKG...: install Debian packages (root only), once per process run.
APT_UPDATED=0
apt_install() {
  [[ $(id -u) -eq 0 ]] || die "missing packages ($*); run as root or install them: apt-get install $*"
  command -v apt-get >/dev/null || die "missing packages ($*) and no apt-get on this machine"
  export DEBIAN_FRONTEND=noninteractive UCF_FORCE_CONFFOLD=1
  if [[ $APT_UPDATED -eq 0 ]]; then
    log "apt-get update"
    apt-get update -qq >&2
    APT_UPDATED=1
  fi
  log "apt-get install $*"
  apt-get install -y -qq --no-install-recommends -o Dpkg::Options::=--force-confold "$@" >&2
}

# need CMD PKG: make sure CMD is on PATH, installing PKG from apt if it is not.
need() {
  local cmd="$1" pkg="$2"
  command -v "$cmd" >/dev/null 2>&1 || apt_install "$pkg"
  command -v "$cmd" >/dev/null 2>&1 || die "$cmd still missing after installing $pkg"
}

# free_port: print a TCP port on 127.0.0.1 that nothing listens on right now.
free_port() {
  need python3 python3
  python3 - <<'PY'
import socket
with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    print(s.getsockname()[1])
PY
}

# port_in_use PORT: true when something accepts connections on 127.0.0.1:PORT.
port_in_use() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# choose_port FIXED SAVED_FILE: FIXED if given, else the port saved last time when it is still
# free (keeps the env stable across restarts), else a fresh free port.
choose_port() {
  local fixed="$1" saved_file="$2" saved=""
  if [[ -n "$fixed" ]]; then
    echo "$fixed"
    return
  fi
  [[ -f "$saved_file" ]] && saved="$(<"$saved_file")"
  if [[ -n "$saved" ]] && ! port_in_use "$saved"; then
    echo "$saved"
  else
    free_port
  fi
}

# pid_alive PID: true when PID names a live (non-zombie) process.
pid_alive() {
  local pid="$1" state
  [[ -n "$pid" && -d "/proc/$pid" ]] || return 1
  state="$(awk '/^State:/ { print $2 }' "/proc/$pid/status" 2>/dev/null || true)"
  [[ -n "$state" && "$state" != "Z" ]]
}

# pid_cmdline_has PID TEXT: true when the command line of PID contains TEXT.
pid_cmdline_has() {
  [[ -r "/proc/$1/cmdline" ]] && tr '\0' ' ' <"/proc/$1/cmdline" | grep -qF -- "$2"
}

# stop_pid PID NAME [GRACE_S]: SIGTERM, wait up to GRACE_S seconds, then SIGKILL.
# Sets STOP_KILLED=1 when SIGKILL was needed.
STOP_KILLED=0
# shellcheck disable=SC2034  # STOP_KILLED is read by the callers
stop_pid() {
  local pid="$1" name="$2" grace="${3:-30}" waited=0
  STOP_KILLED=0
  pid_alive "$pid" || return 0
  log "stopping $name (pid $pid, SIGTERM)"
  kill -TERM "$pid" 2>/dev/null || true
  while pid_alive "$pid" && ((waited < grace * 10)); do
    sleep 0.1
    waited=$((waited + 1))
  done
  if pid_alive "$pid"; then
    log "$name did not stop within ${grace}s; SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    STOP_KILLED=1
    while pid_alive "$pid"; do sleep 0.1; done
  fi
}

# PostgreSQL cluster_name for this state dir; it appears in every server process title
# ("postgres: <name>: checkpointer"), which lets ops/stack down prove nothing is left behind.
pg_cluster_name() { printf 'flywheel-%s' "$(printf '%s' "$FLYWHEEL_STATE" | sha1sum | cut -c1-10)"; }

# take_lock NAME: serialize up/down of one component across concurrent callers (fd 9, released
# when the script exits).
take_lock() {
  mkdir -p "$FLYWHEEL_STATE"
  exec 9>"$FLYWHEEL_STATE/$1.lock"
  if ! flock -n 9; then
    log "waiting for another ops/ command holding $FLYWHEEL_STATE/$1.lock"
    flock -w 600 9 || die "timed out waiting for $FLYWHEEL_STATE/$1.lock"
  fi
}

# stack_mode: print "secure" or "plain" for this state dir: what $FLYWHEEL_STATE/mode recorded,
# "plain" for a state dir made before modes were recorded, else what FLYWHEEL_SECURE asks for.
stack_mode() {
  if [[ -f "$FLYWHEEL_STATE/mode" ]]; then
    cat "$FLYWHEEL_STATE/mode"
  elif [[ -d "$FLYWHEEL_STATE/kafka/data" || -e "$FLYWHEEL_STATE/postgres/cluster" ]]; then
    echo plain
  elif [[ "$FLYWHEEL_SECURE" == 1 ]]; then
    echo secure
  else
    echo plain
  fi
}

is_secure() { [[ "$(stack_mode)" == secure ]]; }

# claim_mode: before starting anything, record the mode asked for (FLYWHEEL_SECURE) in a fresh
# state dir, or fail when the state dir already holds the other kind of stack.
claim_mode() {
  local want=plain have
  [[ "$FLYWHEEL_SECURE" == 1 ]] && want=secure
  have="$(stack_mode)"
  if [[ "$have" != "$want" ]]; then
    die "$FLYWHEEL_STATE holds a $have stack, not a $want one: use another FLYWHEEL_STATE, or" \
      "$([[ $want == secure ]] && echo 'drop --secure / FLYWHEEL_SECURE=1' || echo 'add --secure')"
  fi
  mkdir -p "$FLYWHEEL_STATE"
  # Components claim side by side (ops/stack starts Kafka and PostgreSQL in parallel): write only
  # when the record is missing, and by rename, so a reader never sees a truncated, empty file.
  [[ -f "$FLYWHEEL_STATE/mode" ]] && return 0
  echo "$want" >"$FLYWHEEL_STATE/mode.$BASHPID"
  mv -f "$FLYWHEEL_STATE/mode.$BASHPID" "$FLYWHEEL_STATE/mode"
}

# ensure_secure_material: in secure mode, the certificates and passwords (ops/secure.sh ensure),
# once per command: ops/stack makes them before starting Kafka and PostgreSQL side by side.
ensure_secure_material() {
  is_secure || return 0
  [[ "${FLYWHEEL_SECURE_MATERIAL:-}" == "$FLYWHEEL_STATE" ]] && return 0
  "$OPS_DIR/secure.sh" ensure
  export FLYWHEEL_SECURE_MATERIAL="$FLYWHEEL_STATE"
}

# read_secret NAME: print the password stored in $SECRETS_DIR/NAME (made by ops/secure.sh).
read_secret() {
  [[ -s "$SECRETS_DIR/$1" ]] || die "missing secret $SECRETS_DIR/$1 (run: ops/stack up --secure)"
  printf '%s' "$(<"$SECRETS_DIR/$1")"
}
