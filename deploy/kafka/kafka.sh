#!/usr/bin/env bash
# Start, stop or check a single-node Apache Kafka broker in KRaft mode.
#
#   deploy/kafka/kafka.sh start|stop|status|jars|reset
#
# The broker jars are resolved from Maven Central by pom.xml beside this
# script (mvn package → target/lib). Data and logs live in $KAFKA_DATA_DIR
# (default: .data/kafka at the repository root, git-ignored). Port:
# $KAFKA_PORT (default 9092), controller $KAFKA_CONTROLLER_PORT (9093).
# The broker keeps files open for every partition it holds: it gets as many
# open files as the hard limit allows. `reset` stops it and deletes its data.
# $KAFKA_HEAP sets its heap (default "-Xms256m -Xmx1g").
#
# KAFKA_SECURE=1 starts a broker that takes only TLS + SASL clients (SCRAM or
# PLAIN) on $KAFKA_PORT, with a CA, certificates and users of its own in its
# data dir: see secure.sh beside this script. Give it its own KAFKA_DATA_DIR
# and ports; the default plaintext broker is not touched.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
port=${KAFKA_PORT:-9092}
controller_port=${KAFKA_CONTROLLER_PORT:-9093}
partitions=${KAFKA_PARTITIONS:-4}
data=${KAFKA_DATA_DIR:-$root/.data/kafka}
secure=${KAFKA_SECURE:-0}
read -r -a heap <<< "${KAFKA_HEAP:--Xms256m -Xmx1g}"
pidfile=$data/broker.pid
lib=$here/target/lib

jars() {
  if ! ls "$lib"/kafka_2.13-*.jar >/dev/null 2>&1; then
    echo "kafka: resolving broker jars from Maven Central" >&2
    (cd "$here" && mvn -q -B -Dstyle.color=never package)
  fi
}

running() { [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; }

start() {
  if running; then echo "kafka: already running (pid $(cat "$pidfile"), port $port)"; return 0; fi
  if port_open && [ "$secure" = 1 ]; then
    echo "kafka: 127.0.0.1:$port is taken by another process; a secure broker needs its own" >&2
    return 1
  fi
  if port_open; then
    # another checkout's broker (or one started by hand): use it rather than fail
    echo "kafka: a process already listens on 127.0.0.1:$port; using it as the broker"
    return 0
  fi
  jars
  mkdir -p "$data/logs"
  format_args=()
  if [ "$secure" = 1 ]; then
    # shellcheck source=secure.sh
    . "$here/secure.sh"
    secure_prepare || return 1  # (it checks each of its steps)
  else
    sed -e "s#@DATA_DIR@#$data#g" -e "s#@PORT@#$port#g" \
        -e "s#@CONTROLLER_PORT@#$controller_port#g" -e "s#@PARTITIONS@#$partitions#g" \
        "$here/server.properties.in" > "$data/server.properties"
  fi
  local java_opts=("${heap[@]}" -Dkafka.logs.dir="$data/logs"
                   -Dlog4j2.configurationFile="$here/log4j2.properties")
  if [ ! -f "$data/log/meta.properties" ]; then
    java "${java_opts[@]}" -cp "$lib/*" kafka.tools.StorageTool format \
      -t "$(java -cp "$lib/*" kafka.tools.StorageTool random-uuid)" \
      -c "$data/server.properties" "${format_args[@]}" >"$data/logs/format.log" 2>&1 \
      || { cat "$data/logs/format.log" >&2; return 1; }
  fi
  ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
  nohup java "${java_opts[@]}" -cp "$lib/*" kafka.Kafka "$data/server.properties" \
    >"$data/logs/stdout.log" 2>&1 &
  echo $! > "$pidfile"
  for _ in $(seq 1 120); do
    if port_open; then echo "kafka: up on 127.0.0.1:$port (pid $(cat "$pidfile"))"; return 0; fi
    running || { echo "kafka: broker exited; see $data/logs" >&2; tail -20 "$data/logs/stdout.log" >&2; return 1; }
    sleep 0.5
  done
  echo "kafka: not listening after 60 s; see $data/logs" >&2
  return 1
}

stop() {
  if ! running; then rm -f "$pidfile"; echo "kafka: not running"; return 0; fi
  local pid; pid=$(cat "$pidfile")
  kill "$pid"
  for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
  kill -9 "$pid" 2>/dev/null || true
  rm -f "$pidfile"
  echo "kafka: stopped"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) if running; then echo "kafka: running (pid $(cat "$pidfile"))"; else echo "kafka: stopped"; exit 1; fi ;;
  jars) jars ;;
  reset) stop; rm -rf "$data/log"; echo "kafka: data deleted" ;;
  *) echo "usage: $0 start|stop|status|jars|reset" >&2; exit 2 ;;
esac
