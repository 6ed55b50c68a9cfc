#!/usr/bin/env bash
# Jaeger v2 (trace backend) built from the Go module proxy; OTLP in, query API/UI out, loopback.
#
#   ops/jaeger.sh fetch    build the binary into $FLYWHEEL_HOME/jaeger/<version>/jaeger (once)
#   ops/jaeger.sh up       fetch, start with in-memory storage, wait until the query API answers
#   ops/jaeger.sh down     SIGTERM, wait, SIGKILL if needed
#   ops/jaeger.sh status   pid, ports, log path, and whether the query API answers
#   ops/jaeger.sh env      print the OTEL_EXPORTER_OTLP_TRACES_ENDPOINT / FLYWHEEL_JAEGER_URL exports
#
# `go install ...@v1.75.0` refuses the module (it has replace directives), so the build runs in a
# scratch module: `go get -tool` + `go build` (~4 min and ~1 GB of module downloads on 2 cores,
# once; the result is a ~120 MB static binary). That binary carries Jaeger's placeholder page
# instead of the React UI: the UI's built assets are not in the Go module (jaeger-ui is a git
# submodule there) and no registry the project uses serves them (npm has no jaeger-ui release).
# The query API on $QUERY_PORT (/api/traces/<id>, /api/services, /api/v3/...) is complete; the
# manager's dashboard draws traces from it (/dashboard/traces/<id>).
#
# Env: FLYWHEEL_JAEGER_VERSION (default below), FLYWHEEL_JAEGER_OTLP_GRPC_PORT (4317),
# FLYWHEEL_JAEGER_OTLP_HTTP_PORT (4318), FLYWHEEL_JAEGER_QUERY_PORT (16686): the standard port
# when free, else a free one, kept across restarts; FLYWHEEL_JAEGER_MAX_TRACES (20000): the
# in-memory store keeps the newest traces (138 MB RSS seen after an hour of test traces).
set -euo pipefail

LOG_TAG=jaeger
# shellcheck source=ops/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

JAEGER_VERSION="${FLYWHEEL_JAEGER_VERSION:-1.75.0}"
JAEGER_MODULE=github.com/jaegertracing/jaeger/cmd/jaeger
JAEGER_CACHE="$FLYWHEEL_HOME/jaeger/$JAEGER_VERSION"
JAEGER_BIN="$JAEGER_CACHE/jaeger"
JAEGER_STATE="$FLYWHEEL_STATE/jaeger"
JAEGER_CONFIG="$JAEGER_STATE/config.yaml"
JAEGER_LOG="$JAEGER_STATE/jaeger.log"
PID_FILE="$JAEGER_STATE/jaeger.pid"
READY_TIMEOUT_S="${FLYWHEEL_JAEGER_READY_TIMEOUT:-60}"
# name:preferred port:env override; ports are saved in $JAEGER_STATE/<name>.port
PORTS=(
  "otlp_grpc:4317:${FLYWHEEL_JAEGER_OTLP_GRPC_PORT:-}"
  "otlp_http:4318:${FLYWHEEL_JAEGER_OTLP_HTTP_PORT:-}"
  "query:16686:${FLYWHEEL_JAEGER_QUERY_PORT:-}"
  "query_grpc:16685:"
)

cmd_fetch() {
  if [[ -x "$JAEGER_BIN" ]]; then
    log "Jaeger $JAEGER_VERSION cached in $JAEGER_BIN"
    return
  fi
  need go golang-go
  local started build
  started="$(now_s)"
  mkdir -p "$JAEGER_CACHE"
  build="$(mktemp -d "$JAEGER_CACHE/build.tmp.XXXXXX")"
  log "building $JAEGER_MODULE@v$JAEGER_VERSION with $(go version) (a few minutes; log: $JAEGER_CACHE/build.log)"
  if ! (
    cd "$build"
    go mod init flywheel.local/jaeger-build
    go get -tool "$JAEGER_MODULE@v$JAEGER_VERSION"
    nice -n 10 go build -trimpath -o jaeger "$JAEGER_MODULE"
  ) >"$JAEGER_CACHE/build.log" 2>&1; then
    tail -n 30 "$JAEGER_CACHE/build.log" >&2
    rm -rf "$build"
    die "could not build Jaeger $JAEGER_VERSION (full log: $JAEGER_CACHE/build.log)"
  fi
  mv "$build/jaeger" "$JAEGER_BIN.tmp" && mv -f "$JAEGER_BIN.tmp" "$JAEGER_BIN"
  rm -rf "$build"
  log "built $JAEGER_BIN ($(du -m "$JAEGER_BIN" | cut -f1) MB, $(elapsed_since "$started")s)"
}

running_pid() {
  local pid=""
  [[ -f "$PID_FILE" ]] && pid="$(<"$PID_FILE")"
  if pid_alive "$pid" && pid_cmdline_has "$pid" "$JAEGER_CONFIG"; then
    echo "$pid"
    return 0
  fi
  return 1
}

port_of() { cat "$JAEGER_STATE/$1.port" 2>/dev/null || echo '?'; }

# pick_port NAME PREFERRED FIXED: FIXED if set, else the saved port or PREFERRED when free, else
# a free port.
pick_port() {
  local name="$1" preferred="$2" fixed="$3" saved_file="$JAEGER_STATE/$1.port" port
  if [[ -n "$fixed" ]]; then
    echo "$fixed"
    return
  fi
  port="$(choose_port "" "$saved_file")"
  if [[ ! -s "$saved_file" ]] && ! port_in_use "$preferred"; then
    port="$preferred"
  fi
  echo "$port"
}

answers() { # answers PORT: the query API lists services
  python3 - "$1" <<'PY' >/dev/null 2>&1
import sys, urllib.request
with urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/api/services", timeout=2) as r:
    sys.exit(0 if r.status == 200 else 1)
PY
}

cmd_up() {
  local started pid entry name preferred fixed port chosen=()
  started="$(now_s)"
  need python3 python3
  if pid="$(running_pid)"; then
    log "Jaeger already running: pid $pid, query http://127.0.0.1:$(port_of query)"
    return
  fi
  [[ -x "$JAEGER_BIN" ]] || "$OPS_DIR/jaeger.sh" fetch
  mkdir -p "$JAEGER_STATE"
  local sed_args=(-e "s|@MAX_TRACES@|${FLYWHEEL_JAEGER_MAX_TRACES:-20000}|g")
  for entry in "${PORTS[@]}"; do
    IFS=: read -r name preferred fixed <<<"$entry"
    port="$(pick_port "$name" "$preferred" "$fixed")"
    while [[ " ${chosen[*]} " == *" $port "* ]]; do port="$(free_port)"; done
    port_in_use "$port" && die "port $port ($name) is already in use"
    chosen+=("$port")
    echo "$port" >"$JAEGER_STATE/$name.port"
    sed_args+=(-e "s|@${name^^}_PORT@|$port|g")
  done
  sed "${sed_args[@]}" "$OPS_DIR/jaeger/config.yaml.template" >"$JAEGER_CONFIG"
  rm -f "$PID_FILE"
  log "starting Jaeger $JAEGER_VERSION: OTLP 127.0.0.1:$(port_of otlp_grpc) (gRPC) /" \
    "$(port_of otlp_http) (HTTP), query http://127.0.0.1:$(port_of query) (log: $JAEGER_LOG)"
  # shellcheck disable=SC2016  # $$ and $@ expand in the child shell
  setsid bash -c 'echo $$ >"$0"; exec "$@"' "$PID_FILE" \
    "$JAEGER_BIN" --config "$JAEGER_CONFIG" </dev/null >>"$JAEGER_LOG" 2>&1 9>&- &
  local deadline waited=0
  until [[ -s "$PID_FILE" ]] && pid="$(<"$PID_FILE")" && [[ -n "$pid" ]]; do
    ((waited++ < 50)) || die "Jaeger did not start; see $JAEGER_LOG"
    sleep 0.1
  done
  deadline=$(($(date +%s) + READY_TIMEOUT_S))
  until answers "$(port_of query)" && port_in_use "$(port_of otlp_http)"; do
    if ! pid_alive "$pid"; then
      tail -n 30 "$JAEGER_LOG" >&2 || true
      die "Jaeger exited during startup; log: $JAEGER_LOG"
    fi
    (($(date +%s) <= deadline)) || die "Jaeger did not answer within ${READY_TIMEOUT_S}s; log: $JAEGER_LOG"
    sleep 0.2
  done
  log "Jaeger up: pid $pid, $(rss_mb "$pid") MB RSS ($(elapsed_since "$started")s)"
}

rss_mb() { awk '/^VmRSS:/ { printf "%d", $2 / 1024 }' "/proc/$1/status" 2>/dev/null || echo '?'; }

cmd_down() {
  local pid stray
  need pgrep procps
  if pid="$(running_pid)"; then
    stop_pid "$pid" "Jaeger" 15
  fi
  for stray in $(pgrep -f -- "--config $JAEGER_CONFIG" || true); do
    stop_pid "$stray" "stray Jaeger" 15
  done
  rm -f "$PID_FILE"
  log "Jaeger stopped (traces were in memory)"
}

cmd_status() {
  local pid query
  query="$(port_of query)"
  if pid="$(running_pid)"; then
    local ok=NO
    answers "$query" && ok=yes
    echo "jaeger: running pid=$pid rss_mb=$(rss_mb "$pid") otlp_grpc=127.0.0.1:$(port_of otlp_grpc)" \
      "otlp_http=127.0.0.1:$(port_of otlp_http) query=http://127.0.0.1:$query answers=$ok"
  else
    echo "jaeger: stopped"
  fi
  echo "jaeger: log=$JAEGER_LOG config=$JAEGER_CONFIG binary=$JAEGER_BIN"
  [[ -n "${pid:-}" ]]
}

cmd_env() {
  running_pid >/dev/null || die "Jaeger is not running; run: ops/stack up"
  # Traces only: Jaeger takes no OTLP metrics (metrics go to the services' /metrics endpoints
  # and, when OTEL_EXPORTER_OTLP_METRICS_ENDPOINT is set, to that collector).
  echo "export OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=http://127.0.0.1:$(port_of otlp_http)/v1/traces"
  echo "export FLYWHEEL_JAEGER_URL=http://127.0.0.1:$(port_of query)"
}

case "${1:-}" in
  fetch) take_lock jaeger-fetch && cmd_fetch ;;
  up) take_lock jaeger && cmd_up ;;
  down) take_lock jaeger && cmd_down ;;
  status) cmd_status ;;
  env) cmd_env ;;
  version) echo "$JAEGER_VERSION" ;;
  *) die "usage: $0 fetch|up|down|status|env|version" ;;
esac
