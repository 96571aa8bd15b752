#!/usr/bin/env bash
# A local single-node Apache Kafka 4.x broker (KRaft, combined broker+controller) for development
# and CI, run from the jars Maven fetches into ./lib: no Docker, no Kafka download.
#
#   broker.sh fetch    fill lib/ from pom.xml (quick no-op when it is up to date)
#   broker.sh start    format fresh storage in a new temp dir, start the broker, wait until it answers
#   broker.sh stop     stop the broker that `start` started and delete its temp dir
#   broker.sh status   exit 0 if a broker answers on 127.0.0.1:$KAFKA_PORT
#
# Env: KAFKA_PORT (9092), KAFKA_CONTROLLER_PORT (9093), KAFKA_HEAP_OPTS (-Xms256m -Xmx768m),
#      KAFKA_START_TIMEOUT (60, seconds), JAVA_HOME (optional; Java 17+). See README.md.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
LIB="$HERE/lib"
POM="$HERE/pom.xml"
STAMP="$LIB/.fetched"

PORT="${KAFKA_PORT:-9092}"
CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-9093}"
HEAP_OPTS="${KAFKA_HEAP_OPTS:--Xms256m -Xmx768m}"
START_TIMEOUT="${KAFKA_START_TIMEOUT:-60}"
HOST=127.0.0.1

# Per-port runtime state, so brokers on different ports do not step on each other.
RUN="$HERE/run/$PORT"
PID_FILE="$RUN/broker.pid"
DATA_FILE="$RUN/data-dir"        # holds the path of the temp dir with the broker's log.dirs
PROPS="$RUN/server.properties"
LOG="$RUN/broker.log"

# Main classes (Kafka 4.x): the broker, kafka-storage, kafka-broker-api-versions.
BROKER_MAIN=kafka.Kafka
STORAGE_MAIN=kafka.tools.StorageTool
API_VERSIONS_MAIN=org.apache.kafka.tools.BrokerApiVersionsCommand

say() { echo "kafka: $*"; }
now_ms() { echo $(($(date +%s%N) / 1000000)); }
since() { local ms=$(($(now_ms) - $1)); printf '%d.%d s' $((ms / 1000)) $((ms % 1000 / 100)); }
die() { echo "kafka: error: $*" >&2; exit 1; }

if [[ -n "${JAVA_HOME:-}" && -x "$JAVA_HOME/bin/java" ]]; then JAVA="$JAVA_HOME/bin/java"; else JAVA=java; fi

check_java() {
  command -v "$JAVA" >/dev/null 2>&1 || die "java not found (Kafka 4.x needs Java 17+; set JAVA_HOME)"
  local v
  v="$("$JAVA" -XshowSettings:properties -version 2>&1 | sed -n 's/^ *java\.specification\.version = //p')"
  [[ "$v" =~ ^[0-9]+$ && "$v" -ge 17 ]] || die "Kafka 4.x needs Java 17+, $JAVA is Java ${v:-unknown} (set JAVA_HOME)"
}

pom_hash() { sha256sum "$POM" | cut -d' ' -f1; }

lib_ok() {
  [[ -f "$STAMP" && "$(cat "$STAMP")" == "$(pom_hash)" ]] && compgen -G "$LIB/kafka_2.13-*.jar" >/dev/null
}

cmd_fetch() {
  if lib_ok; then
    say "lib/ is up to date ($(find "$LIB" -name '*.jar' | wc -l) jars)"
    return 0
  fi
  command -v mvn >/dev/null 2>&1 || die "mvn (Maven) not found: it is needed once to fetch the Kafka jars into lib/"
  say "fetching the Kafka jars into lib/ with Maven (pom.xml changed or lib/ empty)..."
  rm -rf "$LIB"
  mkdir -p "$LIB"
  local t0 out
  t0=$(now_ms)
  if ! out="$(mvn -q -B -Dstyle.color=never -f "$POM" dependency:copy-dependencies \
      -DoutputDirectory="$LIB" -DincludeScope=runtime 2>&1)"; then
    echo "$out" >&2
    rm -rf "$LIB"
    die "Maven could not fetch the Kafka jars (see above)"
  fi
  pom_hash >"$STAMP"
  say "fetched $(find "$LIB" -name '*.jar' | wc -l) jars ($(du -sh "$LIB" | cut -f1)) in $(since "$t0")"
}

# Run a Kafka command-line tool class from lib/, quietly (warnings to stderr).
kafka_tool() {
  local main="$1"; shift
  "$JAVA" -Xms32m -Xmx256m -XX:TieredStopAtLevel=1 -XX:+UseSerialGC -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$HERE/log4j2-tools.properties" \
    -cp "$LIB/*" "$main" "$@"
}

# Is our broker process (from the pid file) alive? Sets PID. Guards against a reused pid.
our_broker_alive() {
  PID=""
  [[ -f "$PID_FILE" ]] || return 1
  PID="$(cat "$PID_FILE")"
  [[ "$PID" =~ ^[0-9]+$ ]] || return 1
  kill -0 "$PID" 2>/dev/null || return 1
  tr '\0' ' ' <"/proc/$PID/cmdline" 2>/dev/null | grep -qF -- "$BROKER_MAIN $PROPS"
}

port_open() { (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null; }

# A real Kafka request: ApiVersions through the admin client (what kafka-broker-api-versions does).
answers() {
  port_open "$PORT" || return 1
  timeout 20 "$JAVA" -Xms32m -Xmx256m -XX:TieredStopAtLevel=1 -XX:+UseSerialGC -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$HERE/log4j2-tools.properties" -cp "$LIB/*" \
    "$API_VERSIONS_MAIN" --bootstrap-server "$HOST:$PORT" --command-config "$HERE/probe.properties" \
    >/dev/null 2>&1
}

write_properties() {
  local data_dir="$1"
  cat >"$PROPS" <<EOF
# Written by infra/kafka/broker.sh start: a throwaway single-node KRaft broker+controller.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@$HOST:$CONTROLLER_PORT
listeners=PLAINTEXT://$HOST:$PORT,CONTROLLER://$HOST:$CONTROLLER_PORT
advertised.listeners=PLAINTEXT://$HOST:$PORT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
log.dirs=$data_dir
num.partitions=1
default.replication.factor=1
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
min.insync.replicas=1
auto.create.topics.enable=false
group.initial.rebalance.delay.ms=0
EOF
}

print_log_tail() {
  if [[ -f "$LOG" ]]; then
    echo "---- last 40 lines of $LOG ----" >&2
    tail -n 40 "$LOG" >&2
    echo "----" >&2
  fi
}

cleanup_data_dir() {
  if [[ -f "$DATA_FILE" ]]; then
    local d
    d="$(cat "$DATA_FILE")"
    # Only ever delete a dir this script made (mktemp name pattern).
    if [[ "$d" == */lineage-audit-kafka-"$PORT".* && -d "$d" ]]; then rm -rf "$d"; fi
    rm -f "$DATA_FILE"
  fi
}

cmd_start() {
  check_java
  mkdir -p "$RUN"
  if our_broker_alive; then
    if answers; then
      say "already running (pid $PID) on $HOST:$PORT"
      return 0
    fi
    die "a broker started by this script is running (pid $PID) but does not answer on $HOST:$PORT; run: $0 stop"
  fi
  # A stale pid file or data dir from a broker that died: clean up.
  rm -f "$PID_FILE"
  cleanup_data_dir
  port_open "$PORT" && die "port $PORT is already in use by another process (set KAFKA_PORT)"
  port_open "$CONTROLLER_PORT" && die "port $CONTROLLER_PORT is already in use by another process (set KAFKA_CONTROLLER_PORT)"

  cmd_fetch
  local t0 data_dir cluster_id
  t0=$(now_ms)
  data_dir="$(mktemp -d "${TMPDIR:-/tmp}/lineage-audit-kafka-$PORT.XXXXXX")"
  echo "$data_dir" >"$DATA_FILE"
  write_properties "$data_dir"

  # A cluster id is 16 random bytes, base64url without padding (what kafka-storage random-uuid prints).
  # One starting with '-' would be read as an option by the storage tool's argument parser.
  cluster_id="-"
  while [[ "$cluster_id" == -* ]]; do
    cluster_id="$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')"
  done
  say "formatting KRaft storage in $data_dir (cluster id $cluster_id)"
  if ! kafka_tool "$STORAGE_MAIN" format -t "$cluster_id" -c "$PROPS" >"$RUN/format.log" 2>&1; then
    cat "$RUN/format.log" >&2
    cleanup_data_dir
    die "kafka-storage format failed"
  fi

  say "starting the broker on $HOST:$PORT (controller $HOST:$CONTROLLER_PORT), log: ${LOG#"$HERE/"}"
  # setsid: its own session, so a Ctrl-C in the calling terminal does not reach it.
  local detach=()
  command -v setsid >/dev/null 2>&1 && detach=(setsid)
  # shellcheck disable=SC2086  # HEAP_OPTS is a list of JVM flags
  "${detach[@]}" "$JAVA" $HEAP_OPTS -server -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
    -XX:InitiatingHeapOccupancyPercent=35 -XX:+ExplicitGCInvokesConcurrent -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$HERE/log4j2.properties" -Dkafka.logs.dir="$RUN" \
    -cp "$LIB/*" "$BROKER_MAIN" "$PROPS" </dev/null >"$LOG" 2>&1 &
  echo $! >"$PID_FILE"
  our_broker_alive || { sleep 1; our_broker_alive; } || {
    print_log_tail; rm -f "$PID_FILE"; cleanup_data_dir; die "the broker did not start"; }

  local deadline=$((t0 + START_TIMEOUT * 1000))
  while (($(now_ms) < deadline)); do
    if ! our_broker_alive; then
      print_log_tail
      rm -f "$PID_FILE"
      cleanup_data_dir
      die "the broker exited during start-up"
    fi
    # Cheap TCP check first (the broker binds its port only once it is about to serve), then the
    # real Kafka request, which costs a JVM start.
    if ! port_open "$PORT"; then sleep 0.2; continue; fi
    if answers; then
      say "ready on $HOST:$PORT (pid $PID) after $(since "$t0")"
      return 0
    fi
    sleep 0.5
  done
  print_log_tail
  echo "kafka: error: no answer on $HOST:$PORT after $START_TIMEOUT s; stopping it" >&2
  cmd_stop >&2 || true
  exit 1
}

cmd_stop() {
  if ! our_broker_alive; then
    if [[ -f "$PID_FILE" ]]; then say "broker (pid ${PID:-?}) is not running; cleaning up"; else say "not running on port $PORT"; fi
    rm -f "$PID_FILE"
    cleanup_data_dir
    return 0
  fi
  say "stopping the broker (pid $PID)"
  kill -TERM "$PID" 2>/dev/null || true
  local i
  for ((i = 0; i < 200; i++)); do
    kill -0 "$PID" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$PID" 2>/dev/null; then
    say "still running after 20 s: SIGKILL"
    kill -KILL "$PID" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do kill -0 "$PID" 2>/dev/null || break; sleep 0.1; done
  fi
  rm -f "$PID_FILE"
  cleanup_data_dir
  say "stopped"
}

cmd_status() {
  if answers; then
    if our_broker_alive; then say "running (pid $PID) on $HOST:$PORT"; else say "a broker (not started by this script) answers on $HOST:$PORT"; fi
    return 0
  fi
  if our_broker_alive; then say "broker process $PID is alive but does not answer on $HOST:$PORT"; else say "not running on $HOST:$PORT"; fi
  return 1
}

case "${1:-}" in
  fetch) cmd_fetch ;;
  start) cmd_start ;;
  stop) cmd_stop ;;
  status)
    check_java
    lib_ok || die "lib/ is not fetched (or pom.xml changed): run $0 fetch"
    cmd_status ;;
  *) echo "usage: $0 fetch|start|stop|status" >&2; exit 2 ;;
esac
