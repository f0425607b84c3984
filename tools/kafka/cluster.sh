#!/usr/bin/env bash
# A 3-broker Apache Kafka cluster (KRaft, every node broker+controller) on loopback, for
# fault tests that need replication: kwq's topics get replication factor 3 and
# min.insync.replicas 2, so losing one broker loses nothing and blocks nothing.
#
#   tools/kafka/cluster.sh start DIR [--brokers N]   start a fresh cluster in DIR (N=3)
#   tools/kafka/cluster.sh stop DIR                   stop every node and remove DIR
#   tools/kafka/cluster.sh kill DIR I                 kill -9 node I (1..N)
#   tools/kafka/cluster.sh restart DIR I              start node I again on its own data
#   tools/kafka/cluster.sh pause DIR I | resume DIR I SIGSTOP / SIGCONT node I (a stall)
#
# `start` prints KWQ_KAFKA_BOOTSTRAP=host:port,host:port,..., KWQ_KAFKA_ISOLABLE_PORTS=
# A:L,... (per node a listener advertised on A, listening on L: a forwarder on A can cut
# one client off, tools/python/grid_processes.IsolatingProxy) and KWQ_KAFKA_STATE=DIR on
# stdout; each node's log is DIR/nodeI/server.log (stdout/stderr in DIR/nodeI/out.log).
# Settings (env): KWQ_CLUSTER_RF (3), KWQ_CLUSTER_MIN_ISR (2).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
LIBS="$HERE/.libs"
CP="$LIBS/*"
cmd="${1:-}"; STATE="${2:-}"
[ -n "$cmd" ] && [ -n "$STATE" ] || { sed -n '2,17p' "$0"; exit 2; }
RF="${KWQ_CLUSTER_RF:-3}"
MIN_ISR="${KWQ_CLUSTER_MIN_ISR:-2}"

java_opts() {  # $1: node dir
  echo "-Xms128m -Xmx512m -XX:+UseG1GC -XX:TieredStopAtLevel=1 -Djava.awt.headless=true -Dkafka.logs.dir=$1 -Dlog4j2.configurationFile=$HERE/log4j2.properties"
}

run_node() {  # $1: node index
  local d="$STATE/node$1"
  # shellcheck disable=SC2046
  nohup java -cp "$CP" $(java_opts "$d") kafka.Kafka "$d/server.properties" \
    >"$d/out.log" 2>&1 </dev/null &
  echo $! > "$d/pid"
}

wait_ready() {  # every node answers and a produce with acks=all is consumed back
  local boot; boot="$(cat "$STATE/bootstrap")"
  local deadline=$((SECONDS + ${1:-120})) probe="probe-$$-$RANDOM"
  while :; do
    if ((SECONDS >= deadline)); then
      echo "cluster.sh: not ready after ${1:-120}s; see $STATE/node*/server.log" >&2; return 1
    fi
    # shellcheck disable=SC2046
    if echo "$probe" | timeout 30 java -cp "$CP" $(java_opts "$STATE/node1") \
         org.apache.kafka.tools.ConsoleProducer --bootstrap-server "$boot" \
         --topic kwq.probe --producer-property acks=all \
         --producer-property delivery.timeout.ms=10000 \
         --producer-property request.timeout.ms=5000 >>"$STATE/probe.log" 2>&1 &&
       timeout 30 java -cp "$CP" $(java_opts "$STATE/node1") \
         org.apache.kafka.tools.consumer.ConsoleConsumer --bootstrap-server "$boot" \
         --topic kwq.probe --from-beginning --timeout-ms 15000 \
         2>>"$STATE/probe.log" | grep -q "$probe"; then
      return 0
    fi
    sleep 1
  done
}

node_pid() { cat "$STATE/node$1/pid"; }

case "$cmd" in
  start)
    N=3
    [ "${3:-}" = "--brokers" ] && N="${4:-3}"
    ls "$LIBS"/kafka_2.13-*.jar >/dev/null 2>&1 || {
      echo "cluster.sh: no broker jars in $LIBS: run tools/setup.sh" >&2; exit 1; }
    mkdir -p "$STATE"
    free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
    voters=""; boot=""; isolable=""
    for i in $(seq 1 "$N"); do
      p="$(free_port)"; c="$(free_port)"; l="$(free_port)"; a="$(free_port)"
      echo "$p $c $l $a" > "$STATE/ports$i"
      isolable="${isolable:+$isolable,}$a:$l"
      voters="${voters:+$voters,}$i@127.0.0.1:$c"
      boot="${boot:+$boot,}127.0.0.1:$p"
    done
    echo "$boot" > "$STATE/bootstrap"
    echo "$N" > "$STATE/brokers"
    # shellcheck disable=SC2046
    CLUSTER_ID="$(java -cp "$CP" kafka.tools.StorageTool random-uuid 2>/dev/null | tail -1)"
    for i in $(seq 1 "$N"); do
      d="$STATE/node$i"; mkdir -p "$d"
      read -r p c l a < "$STATE/ports$i"
      cat > "$d/server.properties" <<PROPS
process.roles=broker,controller
node.id=$i
controller.quorum.voters=$voters
listeners=PLAINTEXT://127.0.0.1:$p,ISOLABLE://127.0.0.1:$l,CONTROLLER://127.0.0.1:$c
advertised.listeners=PLAINTEXT://127.0.0.1:$p,ISOLABLE://127.0.0.1:$a
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,ISOLABLE:PLAINTEXT,CONTROLLER:PLAINTEXT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
log.dirs=$d/data
num.partitions=4
default.replication.factor=$RF
min.insync.replicas=$MIN_ISR
offsets.topic.replication.factor=$RF
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=$RF
transaction.state.log.min.isr=$MIN_ISR
share.coordinator.state.topic.replication.factor=$RF
share.coordinator.state.topic.min.isr=$MIN_ISR
group.initial.rebalance.delay.ms=0
# Lets kwq ask for sessions down to 1 s (--kafka_config session.timeout.ms):
# the failover time is about one session (Kafka's default minimum is 6 s).
group.min.session.timeout.ms=1000
unclean.leader.election.enable=false
log.segment.bytes=67108864
file.delete.delay.ms=0
log.retention.hours=24
PROPS
      # shellcheck disable=SC2046
      java -cp "$CP" $(java_opts "$d") kafka.tools.StorageTool format \
        -t "$CLUSTER_ID" -c "$d/server.properties" >"$d/format.log" 2>&1 || {
        echo "cluster.sh: formatting node $i failed:" >&2; cat "$d/format.log" >&2; exit 1; }
    done
    for i in $(seq 1 "$N"); do run_node "$i"; done
    echo "[kafka] $N-broker cluster on $boot, state $STATE (rf $RF, min.insync $MIN_ISR)" >&2
    wait_ready 180 || { "$0" stop "$STATE" --keep; exit 1; }
    echo "[kafka] cluster ready in ${SECONDS}s" >&2
    echo "KWQ_KAFKA_BOOTSTRAP=$boot"
    echo "KWQ_KAFKA_ISOLABLE_PORTS=$isolable"
    echo "KWQ_KAFKA_STATE=$STATE"
    ;;
  stop)
    for f in "$STATE"/node*/pid; do
      [ -f "$f" ] || continue
      pid="$(cat "$f")"
      kill -CONT "$pid" 2>/dev/null || true
      kill "$pid" 2>/dev/null || true
    done
    for f in "$STATE"/node*/pid; do
      [ -f "$f" ] || continue
      pid="$(cat "$f")"
      for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
      kill -9 "$pid" 2>/dev/null || true
    done
    echo "[kafka] cluster in $STATE stopped" >&2
    [ "${3:-}" = "--keep" ] || rm -rf "$STATE"
    ;;
  kill) kill -9 "$(node_pid "$3")" ;;
  pause) kill -STOP "$(node_pid "$3")" ;;
  resume) kill -CONT "$(node_pid "$3")" ;;
  restart)
    pid="$(node_pid "$3")"
    if kill -0 "$pid" 2>/dev/null; then kill -9 "$pid" 2>/dev/null || true; sleep 0.5; fi
    run_node "$3"
    echo "[kafka] node $3 restarted on its own data (pid $(node_pid "$3"))" >&2
    ;;
  *) echo "cluster.sh: unknown command $cmd" >&2; exit 2 ;;
esac
