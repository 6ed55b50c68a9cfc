#!/usr/bin/env bash
# Single-node Apache Kafka 4.x (KRaft, broker+controller in one JVM) from Maven Central jars.
#
#   ops/kafka.sh fetch    resolve the jars into $FLYWHEEL_HOME/kafka/<version>/libs (once)
#   ops/kafka.sh up       fetch, format storage (first time), start, wait for metadata answers
#   ops/kafka.sh down     SIGTERM, wait, SIGKILL if needed
#   ops/kafka.sh status   pid, port, log paths, and whether the broker answers
#   ops/kafka.sh env      print `export KAFKA_BOOTSTRAP_SERVERS=...`
#
# Env: FLYWHEEL_KAFKA_VERSION (default below), FLYWHEEL_KAFKA_PORT (default: free port, kept
# across restarts), FLYWHEEL_KAFKA_HEAP (default -Xmx1g -Xms1g), FLYWHEEL_HOME, FLYWHEEL_STATE,
# FLYWHEEL_SECURE (1: one SASL_SSL listener, ops/kafka/secure.properties.template).
set -euo pipefail

LOG_TAG=kafka
# shellcheck source=ops/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# Latest 4.x release on Maven Central when this was written (org.apache.kafka:kafka_2.13).
KAFKA_VERSION="${FLYWHEEL_KAFKA_VERSION:-4.4.0}"
KAFKA_CACHE="$FLYWHEEL_HOME/kafka/$KAFKA_VERSION"
KAFKA_LIBS="$KAFKA_CACHE/libs"
KAFKA_STATE="$FLYWHEEL_STATE/kafka"
KAFKA_DATA="$KAFKA_STATE/data"
KAFKA_LOGS="$KAFKA_STATE/logs"
KAFKA_CONFIG="$KAFKA_STATE/server.properties"
PID_FILE="$KAFKA_STATE/kafka.pid"
PORT_FILE="$KAFKA_STATE/port"
CONTROLLER_PORT_FILE="$KAFKA_STATE/controller.port"
VERSION_FILE="$KAFKA_STATE/version"
HEAP_OPTS="${FLYWHEEL_KAFKA_HEAP:--Xmx1g -Xms1g}"
READY_TIMEOUT_S="${FLYWHEEL_KAFKA_READY_TIMEOUT:-120}"
USE_CDS="${FLYWHEEL_KAFKA_CDS:-1}"

java_tool() { # java_tool MAIN_CLASS ARGS...: run a Kafka tool class from the cached jars
  java -Xmx256m -Dlog4j2.configurationFile="$OPS_DIR/kafka/log4j2.properties" \
    -Dkafka.logs.dir="$KAFKA_LOGS" -cp "$KAFKA_LIBS/*" "$@"
}

cmd_fetch() {
  need java openjdk-17-jre-headless
  if [[ -f "$KAFKA_LIBS/.complete" ]]; then
    log "jars for Kafka $KAFKA_VERSION cached in $KAFKA_LIBS"
    return
  fi
  need mvn maven
  local started tmp fetch_log
  started="$(now_s)"
  mkdir -p "$KAFKA_CACHE"
  tmp="$(mktemp -d "$KAFKA_CACHE/libs.tmp.XXXXXX")"
  fetch_log="$KAFKA_CACHE/fetch.log"
  log "resolving org.apache.kafka:kafka_2.13:$KAFKA_VERSION from Maven Central (log: $fetch_log)"
  if ! mvn -B -q -Dstyle.color=never -f "$OPS_DIR/kafka/pom.xml" \
    -Dkafka.version="$KAFKA_VERSION" -DincludeScope=runtime -DoutputDirectory="$tmp" \
    dependency:copy-dependencies >"$fetch_log" 2>&1; then
    tail -n 30 "$fetch_log" >&2
    rm -rf "$tmp"
    die "maven could not resolve Kafka $KAFKA_VERSION (full log: $fetch_log)"
  fi
  [[ -f "$tmp/kafka_2.13-$KAFKA_VERSION.jar" ]] || die "kafka_2.13-$KAFKA_VERSION.jar missing in $tmp"
  touch "$tmp/.complete"
  rm -rf "$KAFKA_LIBS"
  mv "$tmp" "$KAFKA_LIBS"
  log "cached $(find "$KAFKA_LIBS" -name '*.jar' | wc -l) jars in $KAFKA_LIBS ($(elapsed_since "$started")s)"
}

listener() { # the client listener's security protocol, as configured
  if is_secure; then echo "SASL_SSL (SCRAM-SHA-512)"; else echo PLAINTEXT; fi
}

running_pid() { # print the broker pid when our broker is running
  local pid=""
  [[ -f "$PID_FILE" ]] && pid="$(<"$PID_FILE")"
  if pid_alive "$pid" && pid_cmdline_has "$pid" "$KAFKA_CONFIG"; then
    echo "$pid"
    return 0
  fi
  return 1
}

probe() { # probe PORT [TIMEOUT_S]: the broker answers metadata (secure: over TLS, as the client user)
  local args=(127.0.0.1 "$1" "${2:-5}")
  if is_secure; then
    args+=(--cafile "$TLS_DIR/ca.pem" --user "$CLIENT_USER" --password-file "$SECRETS_DIR/kafka-client")
  fi
  python3 "$OPS_DIR/kafka/probe.py" "${args[@]}"
}

write_config() { # write_config PORT CONTROLLER_PORT
  local base
  base="$(sed -e "s|@PORT@|$1|g" -e "s|@CONTROLLER_PORT@|$2|g" -e "s|@DATA_DIR@|$KAFKA_DATA|g" \
    "$OPS_DIR/kafka/server.properties.template")"
  if ! is_secure; then
    printf '%s\n' "$base" >"$KAFKA_CONFIG"
    return
  fi
  # The secure settings replace the base's keys of the same name. The admin password is filled
  # in with bash string operations only, so it never is an argument of a process.
  local overlay line key
  overlay="$(<"$OPS_DIR/kafka/secure.properties.template")"
  overlay="${overlay//@PORT@/$1}"
  overlay="${overlay//@CONTROLLER_PORT@/$2}"
  overlay="${overlay//@TLS_DIR@/$TLS_DIR}"
  overlay="${overlay//@ADMIN_PASSWORD@/$(read_secret kafka-admin)}"
  rm -f "$KAFKA_CONFIG"
  (
    umask 077
    while IFS= read -r line; do
      key="${line%%=*}"
      [[ "$line" == *=* && "$overlay" == *$'\n'"$key="* ]] && continue
      printf '%s\n' "$line"
    done <<<"$base" >"$KAFKA_CONFIG"
    printf '%s\n' "$overlay" >>"$KAFKA_CONFIG"
  )
}

# Class-data sharing (faster restarts): the first start records the loaded classes into
# $CDS_RECORDING when the broker exits; a clean `down` moves it into the jar cache, and later
# starts (any state dir) map it. Measured on this 2-core machine under load: ready in ~7 s
# instead of ~12 s. An archive fits one JVM build and class path, so both are in its name.
CDS_RECORDING="$KAFKA_STATE/cds-recording.jsa"
cds_archive() {
  local java_home jvm_key
  java_home="$(dirname "$(dirname "$(readlink -f "$(command -v java)")")")"
  jvm_key="$( { echo "$java_home"; cat "$java_home/release" 2>/dev/null; } | cksum | cut -d' ' -f1)"
  echo "$KAFKA_CACHE/cds/kafka-$jvm_key.jsa"
}

cds_flag() { # print the JVM flag that uses (or records) the archive
  ((USE_CDS)) || return 0
  local archive
  archive="$(cds_archive)"
  if [[ -s "$archive" ]]; then
    echo "-XX:SharedArchiveFile=$archive"
  else
    rm -f "$CDS_RECORDING"
    echo "-XX:ArchiveClassesAtExit=$CDS_RECORDING"
  fi
}

keep_cds_recording() { # after a clean stop: publish the recorded archive into the cache
  [[ -s "$CDS_RECORDING" ]] || return 0
  local archive
  archive="$(cds_archive)"
  if [[ ! -e "$archive" ]]; then
    mkdir -p "$(dirname "$archive")"
    mv "$CDS_RECORDING" "$archive.tmp.$$" && mv -f "$archive.tmp.$$" "$archive"
    log "class-data archive for faster restarts saved in $archive"
  fi
  rm -f "$CDS_RECORDING"
}

format_storage() {
  [[ -f "$KAFKA_DATA/meta.properties" ]] && return
  local cluster_id
  # A Kafka Uuid in its base64url form (what `kafka-storage random-uuid` prints), without paying
  # for another JVM start.
  cluster_id="$(python3 -c 'import base64, uuid
while (i := base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")).startswith("-"):
    pass
print(i)')"
  log "formatting storage in $KAFKA_DATA (cluster id $cluster_id)"
  local args=(kafka.tools.StorageTool format --config "$KAFKA_CONFIG" --cluster-id "$cluster_id"
    --ignore-formatted)
  if ! is_secure; then
    java_tool "${args[@]}" >>"$KAFKA_LOGS/format.log" 2>&1 ||
      die "storage format failed; see $KAFKA_LOGS/format.log"
    return
  fi
  # The SCRAM-SHA-512 users go into the first metadata records. Their passwords reach the JVM
  # through a java @argument-file (0600, deleted at once), never through a command line.
  local argfile="$KAFKA_STATE/format.args" arg
  (
    umask 077
    {
      for arg in -Xmx256m "-Dlog4j2.configurationFile=$OPS_DIR/kafka/log4j2.properties" \
        "-Dkafka.logs.dir=$KAFKA_LOGS" -cp "$KAFKA_LIBS/*" "${args[@]}"; do
        printf '"%s"\n' "$arg"
      done
      printf '"%s"\n' --add-scram "SCRAM-SHA-512=[name=admin,password=$(read_secret kafka-admin)]"
      printf '"%s"\n' --add-scram \
        "SCRAM-SHA-512=[name=$CLIENT_USER,password=$(read_secret kafka-client)]"
    } >"$argfile"
  )
  local rc=0
  java "@$argfile" >>"$KAFKA_LOGS/format.log" 2>&1 || rc=$?
  rm -f "$argfile"
  ((rc == 0)) || die "storage format failed; see $KAFKA_LOGS/format.log"
  log "SCRAM-SHA-512 users admin (broker) and $CLIENT_USER (clients) created"
}

wait_ready() { # wait_ready PID PORT
  local pid="$1" port="$2" deadline
  deadline=$(($(date +%s) + READY_TIMEOUT_S))
  until probe "$port" 2 >/dev/null 2>&1; do
    if ! pid_alive "$pid"; then
      tail -n 40 "$KAFKA_LOGS/stdout.log" "$KAFKA_LOGS/server.log" >&2 2>/dev/null || true
      die "broker exited during startup; logs: $KAFKA_LOGS"
    fi
    if (($(date +%s) > deadline)); then
      tail -n 40 "$KAFKA_LOGS/server.log" >&2 2>/dev/null || true
      die "broker did not answer metadata within ${READY_TIMEOUT_S}s; logs: $KAFKA_LOGS"
    fi
    sleep 0.3
  done
}

cmd_up() {
  local started pid port cport
  started="$(now_s)"
  need python3 python3
  if pid="$(running_pid)"; then
    port="$(<"$PORT_FILE")"
    if [[ -n "${FLYWHEEL_KAFKA_PORT:-}" && "$FLYWHEEL_KAFKA_PORT" != "$port" ]]; then
      log "WARNING: running on port $port, not FLYWHEEL_KAFKA_PORT=$FLYWHEEL_KAFKA_PORT (down + up to move it)"
    fi
    wait_ready "$pid" "$port"
    log "Kafka $(<"$VERSION_FILE") already running: pid $pid, 127.0.0.1:$port ($(elapsed_since "$started")s)"
    return
  fi
  [[ -f "$KAFKA_LIBS/.complete" ]] || "$OPS_DIR/kafka.sh" fetch
  claim_mode
  ensure_secure_material
  mkdir -p "$KAFKA_DATA" "$KAFKA_LOGS"
  cp "$OPS_DIR/kafka/log4j2.properties" "$KAFKA_STATE/log4j2.properties"
  if is_secure; then
    cat "$OPS_DIR/kafka/log4j2.secure.properties" >>"$KAFKA_STATE/log4j2.properties"
  fi
  port="$(choose_port "${FLYWHEEL_KAFKA_PORT:-}" "$PORT_FILE")"
  port_in_use "$port" && die "port $port is already in use (FLYWHEEL_KAFKA_PORT?)"
  cport="$(choose_port "" "$CONTROLLER_PORT_FILE")"
  [[ "$cport" != "$port" ]] || cport="$(free_port)"
  write_config "$port" "$cport"
  echo "$port" >"$PORT_FILE"
  echo "$cport" >"$CONTROLLER_PORT_FILE"
  echo "$KAFKA_VERSION" >"$VERSION_FILE"
  format_storage
  rm -f "$PID_FILE"
  log "starting Kafka $KAFKA_VERSION on 127.0.0.1:$port, $(listener) (logs: $KAFKA_LOGS/server.log)"
  local jvm_flags cds
  read -r -a jvm_flags <<<"$HEAP_OPTS"
  cds="$(cds_flag)"
  [[ -z "$cds" ]] || jvm_flags+=("$cds")
  # New session so the broker outlives the calling shell; the child records its own pid and then
  # becomes the JVM (exec), so the pid file names the java process.
  # shellcheck disable=SC2016  # $$ and $@ expand in the child shell
  setsid bash -c 'echo $$ >"$0"; exec "$@"' "$PID_FILE" \
    java "${jvm_flags[@]}" -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$KAFKA_STATE/log4j2.properties" \
    -Dkafka.logs.dir="$KAFKA_LOGS" -cp "$KAFKA_LIBS/*" kafka.Kafka "$KAFKA_CONFIG" \
    </dev/null >>"$KAFKA_LOGS/stdout.log" 2>&1 9>&- &
  local waited=0
  until [[ -s "$PID_FILE" ]] && pid="$(<"$PID_FILE")" && [[ -n "$pid" ]]; do
    ((waited++ < 50)) || die "broker process did not start; see $KAFKA_LOGS/stdout.log"
    sleep 0.1
  done
  wait_ready "$pid" "$port"
  log "Kafka $KAFKA_VERSION up: pid $pid, 127.0.0.1:$port, $(listener) ($(elapsed_since "$started")s)"
}

cmd_down() {
  local pid
  need pgrep procps
  if pid="$(running_pid)"; then
    stop_pid "$pid" "Kafka broker" 30
    if ((STOP_KILLED)); then rm -f "$CDS_RECORDING"; else keep_cds_recording; fi
  fi
  # A broker whose pid file was lost is still ours when it runs with our config file.
  local stray
  for stray in $(pgrep -f -- "kafka.Kafka $KAFKA_CONFIG" || true); do
    stop_pid "$stray" "stray Kafka broker" 30
  done
  rm -f "$PID_FILE"
  log "Kafka stopped (data kept in $KAFKA_DATA)"
}

cmd_status() {
  local pid port
  port="$(cat "$PORT_FILE" 2>/dev/null || echo '?')"
  if pid="$(running_pid)"; then
    if probe "$port" 2 >/dev/null; then
      echo "kafka: running pid=$pid bootstrap=127.0.0.1:$port version=$(<"$VERSION_FILE") listener=$(listener | cut -d' ' -f1) answers=yes"
    else
      echo "kafka: running pid=$pid bootstrap=127.0.0.1:$port version=$(<"$VERSION_FILE") listener=$(listener | cut -d' ' -f1) answers=NO"
    fi
  else
    echo "kafka: stopped"
  fi
  echo "kafka: logs=$KAFKA_LOGS/server.log stdout=$KAFKA_LOGS/stdout.log data=$KAFKA_DATA jars=$KAFKA_LIBS"
  [[ -n "${pid:-}" ]]
}

cmd_env() {
  running_pid >/dev/null || die "Kafka is not running; run: ops/stack up"
  echo "export KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:$(<"$PORT_FILE")"
}

case "${1:-}" in
  fetch) take_lock kafka-fetch && cmd_fetch ;;
  up) take_lock kafka && cmd_up ;;
  down) take_lock kafka && cmd_down ;;
  status) cmd_status ;;
  env) cmd_env ;;
  version) echo "$KAFKA_VERSION" ;;
  *) die "usage: $0 fetch|up|down|status|env|version" ;;
esac
