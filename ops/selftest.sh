#!/usr/bin/env bash
# Self-test of the ops stack lifecycle (the part pytest must not do, since tests share the stack):
#   up -> up again (idempotent: same pids, < 30 s) -> down (no Kafka/PostgreSQL process left,
#   ports closed) -> up (restart on a machine where it already ran: < 30 s).
# The stack is left running at the end unless --stop is given.
#
#   ops/selftest.sh [--stop]
# Use FLYWHEEL_STATE=/tmp/somewhere to exercise a private stack instead of the shared one.
set -euo pipefail

LOG_TAG=selftest
OPS="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=ops/lib.sh
source "$OPS/lib.sh"

STOP_AT_END=0
[[ "${1:-}" == "--stop" ]] && STOP_AT_END=1
FAST_LIMIT_S=30
FAILURES=()

fail() { FAILURES+=("$*"); log "FAIL: $*"; }
ok() { log "ok: $*"; }
expect() { # expect WHAT CMD...: CMD must succeed
  local what="$1"
  shift
  if "$@"; then ok "$what"; else fail "$what"; fi
}
expect_not() { # expect_not WHAT CMD...: CMD must fail
  local what="$1"
  shift
  if "$@"; then fail "$what"; else ok "$what"; fi
}
same() { [[ "$1" == "$2" ]]; }
quiet() { "$@" >/dev/null 2>&1; }

timed_up() { # timed_up LABEL: run ops/stack up, print seconds taken
  local started secs
  started="$(now_s)"
  "$OPS/stack" up >/dev/null || { fail "$1: ops/stack up failed"; echo 9999; return; }
  secs="$(elapsed_since "$started")"
  log "$1: ops/stack up took ${secs}s"
  echo "$secs"
}

kafka_pid() { cat "$FLYWHEEL_STATE/kafka/kafka.pid" 2>/dev/null || true; }
pg_pid() {
  local dir
  dir="$(readlink -f "$FLYWHEEL_STATE/postgres/cluster" 2>/dev/null)" || return 0
  head -n 1 "$dir/data/postmaster.pid" 2>/dev/null || true
}
under_limit() { awk -v s="$1" -v l="$FAST_LIMIT_S" 'BEGIN { exit !(s < l) }'; }

log "state: $FLYWHEEL_STATE"
first="$(timed_up "first up")"
pids_before="$(kafka_pid) $(pg_pid)"
env_before="$("$OPS/stack" env)"

second="$(timed_up "second up (already running)")"
expect "second up < ${FAST_LIMIT_S}s (${second}s)" under_limit "$second"
pids_after="$(kafka_pid) $(pg_pid)"
expect "second up kept the pids ($pids_before)" same "$pids_before" "$pids_after"
expect "second up kept the env" same "$env_before" "$("$OPS/stack" env)"

kafka_port="$(<"$FLYWHEEL_STATE/kafka/port")"
pg_port="$(<"$FLYWHEEL_STATE/postgres/port")"
expect "ops/stack down exits 0" quiet "$OPS/stack" down
for pid in $pids_before; do
  expect_not "pid $pid gone after down" pid_alive "$pid"
done
# Every process of this stack: the broker JVM, the postmaster and its children (their titles
# carry the cluster name).
pg_data="$(readlink -f "$FLYWHEEL_STATE/postgres/cluster")/data"
leftover="$(pgrep -a -f -- "kafka\.Kafka $FLYWHEEL_STATE/|postgres: $(pg_cluster_name):|-D $pg_data" || true)"
expect "no Kafka/PostgreSQL process left after down${leftover:+: $leftover}" same "$leftover" ""
for port in "$kafka_port" "$pg_port"; do
  expect_not "port $port closed after down" port_in_use "$port"
done
expect_not "status reports stopped after down" quiet "$OPS/stack" status

third="$(timed_up "up after down (restart)")"
expect "restart up < ${FAST_LIMIT_S}s (${third}s)" under_limit "$third"
expect "status reports both answering" quiet "$OPS/stack" status

if ((STOP_AT_END)); then
  "$OPS/stack" down >/dev/null
fi

log "summary: first up ${first}s, second up ${second}s, restart up ${third}s"
if ((${#FAILURES[@]})); then
  log "SELFTEST FAILED (${#FAILURES[@]}):"
  printf '  - %s\n' "${FAILURES[@]}" >&2
  exit 1
fi
log "SELFTEST PASSED"
