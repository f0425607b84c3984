#!/usr/bin/env bash
# Starts a single-node Apache Kafka broker (KRaft, combined broker+controller) on loopback
# with a fresh temp data dir, and waits until it really accepts a produce and a consume.
#
#   tools/kafka/start.sh [--port N] [--state-dir DIR] [--timeout SECONDS] [--heap SIZE]
#
# --heap SIZE (e.g. 1g) fixes the broker's JVM heap at SIZE, allocated and touched at
# start (-Xms = -Xmx, -XX:+AlwaysPreTouch, as Kafka's operations guide advises), so its
# RSS is flat from the first record (a long soak); a restart on DIR keeps it. Default:
# a heap that starts at 256 MiB and grows to 1 GiB as the JVM sees fit.
# --port 0 (the default) picks a free port. On success prints to stdout:
#   KWQ_KAFKA_BOOTSTRAP=127.0.0.1:PORT        (plaintext)
#   KWQ_KAFKA_SASL_BOOTSTRAP=127.0.0.1:PORT2  (SASL/PLAIN, user kwq, password kwq-secret:
#                                              tests of --kafka_config against real auth)
#   KWQ_KAFKA_TLS_BOOTSTRAP=127.0.0.1:PORT3   (TLS; its CA certificate in DIR/tls/ca.pem,
#   KWQ_KAFKA_TLS_CA=DIR/tls/ca.pem            made fresh by openssl at each start)
#   KWQ_KAFKA_MTLS_BOOTSTRAP=127.0.0.1:PORT4  (mutual TLS: the broker requires a client
#   KWQ_KAFKA_TLS_CLIENT_CERT=DIR/tls/client.crt  certificate signed by the same CA;
#   KWQ_KAFKA_TLS_CLIENT_KEY=DIR/tls/client.key   this one is)
#   KWQ_KAFKA_ISOLABLE_PORTS=A:L               (a listener whose advertised port A is not
#                                              the port L it listens on: a forwarder on A
#                                              can cut one client off, see
#                                              tools/python/grid_processes.IsolatingProxy)
#   KWQ_KAFKA_STATE=DIR
# and writes DIR/pid, DIR/bootstrap, DIR/broker.log (stdout) and DIR/server.log (the
# broker's log) (DIR defaults to a new mktemp dir, printed on stderr). Stop it with
# tools/kafka/stop.sh DIR (--keep keeps DIR). Given a DIR a broker ran in before,
# start.sh restarts that broker on its own data, ports and certificates (a broker
# restart in a fault test); a 3-broker cluster is tools/kafka/cluster.sh.
set -euo pipefail
DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
LIBS="$DIR/.libs"
PORT=0
STATE=""
TIMEOUT=90
HEAP=""
while (($#)); do
  case "$1" in
    --port) PORT="$2"; shift 2 ;;
    --state-dir) STATE="$2"; shift 2 ;;
    --timeout) TIMEOUT="$2"; shift 2 ;;
    --heap) HEAP="$2"; shift 2 ;;
    -h|--help) sed -n '2,26p' "$0"; exit 0 ;;
    *) echo "start.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
# Checked before anything is made (DIR/heap, read back at a restart, holds only
# a value that passed).
if [ -n "$HEAP" ] && ! [[ "$HEAP" =~ ^[0-9]+[mMgG]$ ]]; then
  echo "start.sh: --heap takes a size such as 512m or 1g, not '$HEAP'" >&2; exit 2
fi
if ! ls "$LIBS"/kafka_2.13-*.jar >/dev/null 2>&1; then
  echo "start.sh: no broker jars in $LIBS: run tools/setup.sh (or tools/kafka/fetch.sh)" >&2
  exit 1
fi
[ -n "$STATE" ] || STATE="$(mktemp -d /tmp/kwq-kafka.XXXXXX)"
mkdir -p "$STATE"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
REUSE=0
if [ -f "$STATE/server.properties" ] && [ -f "$STATE/ports" ] &&
   [ -f "$STATE/data/meta.properties" ]; then
  REUSE=1  # a restart on its own data
  read -r PORT CPORT SPORT TPORT MPORT IPORT APORT < "$STATE/ports"
else
  [ "$PORT" != 0 ] || PORT="$(free_port)"
  CPORT="$(free_port)"
  SPORT="$(free_port)"
  TPORT="$(free_port)"
  MPORT="$(free_port)"
  IPORT="$(free_port)"
  APORT="$(free_port)"
  echo "$PORT $CPORT $SPORT $TPORT $MPORT $IPORT $APORT" > "$STATE/ports"
fi
TLS="$STATE/tls"
if [ "$REUSE" = 0 ]; then
# A throwaway CA and a certificate for 127.0.0.1, for the TLS listener.
mkdir -p "$TLS"
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=kwq test CA" \
  -keyout "$TLS/ca.key" -out "$TLS/ca.pem" >"$TLS/openssl.log" 2>&1 &&
openssl req -newkey rsa:2048 -nodes -subj "/CN=127.0.0.1" \
  -keyout "$TLS/broker.key" -out "$TLS/broker.csr" >>"$TLS/openssl.log" 2>&1 &&
printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' > "$TLS/san.ext" &&
openssl x509 -req -in "$TLS/broker.csr" -CA "$TLS/ca.pem" -CAkey "$TLS/ca.key" \
  -CAcreateserial -days 2 -extfile "$TLS/san.ext" -out "$TLS/broker.crt" \
  >>"$TLS/openssl.log" 2>&1 &&
openssl pkcs8 -topk8 -nocrypt -in "$TLS/broker.key" -out "$TLS/broker.pk8" \
  >>"$TLS/openssl.log" 2>&1 &&
cat "$TLS/broker.pk8" "$TLS/broker.crt" > "$TLS/broker.pem" &&
openssl req -newkey rsa:2048 -nodes -subj "/CN=kwq-test-client" \
  -keyout "$TLS/client.key" -out "$TLS/client.csr" >>"$TLS/openssl.log" 2>&1 &&
openssl x509 -req -in "$TLS/client.csr" -CA "$TLS/ca.pem" -CAkey "$TLS/ca.key" \
  -CAcreateserial -days 2 -out "$TLS/client.crt" >>"$TLS/openssl.log" 2>&1 || {
  echo "start.sh: making the TLS certificates failed:" >&2; cat "$TLS/openssl.log" >&2; exit 1; }
rm -rf "$STATE/data"
cat > "$STATE/server.properties" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$CPORT
listeners=PLAINTEXT://127.0.0.1:$PORT,SASL_PLAINTEXT://127.0.0.1:$SPORT,SSL://127.0.0.1:$TPORT,MTLS://127.0.0.1:$MPORT,ISOLABLE://127.0.0.1:$IPORT,CONTROLLER://127.0.0.1:$CPORT
advertised.listeners=PLAINTEXT://127.0.0.1:$PORT,SASL_PLAINTEXT://127.0.0.1:$SPORT,SSL://127.0.0.1:$TPORT,MTLS://127.0.0.1:$MPORT,ISOLABLE://127.0.0.1:$APORT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT,SSL:SSL,MTLS:SSL,ISOLABLE:PLAINTEXT,CONTROLLER:PLAINTEXT
listener.name.ssl.ssl.keystore.type=PEM
listener.name.ssl.ssl.keystore.location=$TLS/broker.pem
listener.name.ssl.ssl.client.auth=none
listener.name.mtls.ssl.keystore.type=PEM
listener.name.mtls.ssl.keystore.location=$TLS/broker.pem
listener.name.mtls.ssl.truststore.type=PEM
listener.name.mtls.ssl.truststore.location=$TLS/ca.pem
listener.name.mtls.ssl.client.auth=required
sasl.enabled.mechanisms=PLAIN
listener.name.sasl_plaintext.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required user_kwq="kwq-secret";
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
log.dirs=$STATE/data
num.partitions=4
auto.create.topics.enable=true
offsets.topic.replication.factor=1
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
# Lets kwq ask for sessions down to 1 s (--kafka_config session.timeout.ms):
# the failover time is about one session (Kafka's default minimum is 6 s).
group.min.session.timeout.ms=1000
log.segment.bytes=67108864
# Deleted topics' files go at once (default: a minute later, in the middle of
# whatever runs next).
file.delete.delay.ms=0
log.retention.hours=24
PROPS
# Extra broker properties, one per line (e.g. to try a setting in a benchmark).
[ -z "${KWQ_KAFKA_EXTRA_PROPS:-}" ] || printf '%s\n' "$KWQ_KAFKA_EXTRA_PROPS" >> "$STATE/server.properties"
fi  # REUSE = 0: certificates, properties
if [ -z "$HEAP" ] && [ -f "$STATE/heap" ]; then HEAP="$(cat "$STATE/heap")"; fi
if [ -n "$HEAP" ]; then
  echo "$HEAP" > "$STATE/heap"
  HEAP_OPTS=("-Xms$HEAP" "-Xmx$HEAP" -XX:+AlwaysPreTouch)
else
  HEAP_OPTS=(-Xms256m -Xmx1g)
fi
JAVA_OPTS=(-XX:+UseG1GC -Djava.awt.headless=true
  "-Dkafka.logs.dir=$STATE" "-Dlog4j2.configurationFile=$DIR/log4j2.properties")
# Extra JVM options for the broker only, e.g. JMX for tools/bench/broker_requests.sh.
read -r -a EXTRA_BROKER_OPTS <<<"${KWQ_KAFKA_BROKER_JAVA_OPTS:-}"
CP="$LIBS/*"
if [ "$REUSE" = 0 ]; then
CLUSTER_ID="$(java -cp "$CP" "${JAVA_OPTS[@]}" kafka.tools.StorageTool random-uuid 2>/dev/null | tail -1)"
java -cp "$CP" "${JAVA_OPTS[@]}" kafka.tools.StorageTool format -t "$CLUSTER_ID" \
  -c "$STATE/server.properties" >"$STATE/format.log" 2>&1 || {
  echo "start.sh: formatting the storage dir failed:" >&2; cat "$STATE/format.log" >&2; exit 1; }
fi
nohup java -cp "$CP" "${HEAP_OPTS[@]}" "${JAVA_OPTS[@]}" ${EXTRA_BROKER_OPTS[@]+"${EXTRA_BROKER_OPTS[@]}"} kafka.Kafka "$STATE/server.properties" \
  >>"$STATE/broker.log" 2>&1 </dev/null &
PID=$!
echo "$PID" > "$STATE/pid"
BOOT="127.0.0.1:$PORT"
echo "$BOOT" > "$STATE/bootstrap"
echo "[kafka] broker pid $PID on $BOOT, state $STATE" >&2

# Ready means: a record produced to a probe topic is consumed back.
deadline=$((SECONDS + TIMEOUT))
probe="probe-$$-$RANDOM"
while :; do
  if ! kill -0 "$PID" 2>/dev/null; then
    echo "start.sh: broker exited during start-up; last log lines:" >&2
    tail -30 "$STATE/broker.log" "$STATE/server.log" >&2 2>/dev/null || true
    exit 1
  fi
  if ((SECONDS >= deadline)); then
    echo "start.sh: broker not ready after ${TIMEOUT}s; stopping it" >&2
    kill "$PID" 2>/dev/null || true
    exit 1
  fi
  if echo "$probe" | timeout 30 java -cp "$CP" "${JAVA_OPTS[@]}" \
       org.apache.kafka.tools.ConsoleProducer --bootstrap-server "$BOOT" \
       --topic kwq.probe --producer-property acks=all \
       --producer-property delivery.timeout.ms=10000 \
       --producer-property request.timeout.ms=5000 >>"$STATE/probe.log" 2>&1 &&
     timeout 30 java -cp "$CP" "${JAVA_OPTS[@]}" org.apache.kafka.tools.consumer.ConsoleConsumer \
       --bootstrap-server "$BOOT" --topic kwq.probe --from-beginning \
       --timeout-ms 15000 2>>"$STATE/probe.log" | grep -q "$probe"; then
    break
  fi
  sleep 1
done
echo "[kafka] ready in ${SECONDS}s" >&2
echo "KWQ_KAFKA_BOOTSTRAP=$BOOT"
echo "KWQ_KAFKA_SASL_BOOTSTRAP=127.0.0.1:$SPORT"
echo "KWQ_KAFKA_TLS_BOOTSTRAP=127.0.0.1:$TPORT"
echo "KWQ_KAFKA_TLS_CA=$TLS/ca.pem"
echo "KWQ_KAFKA_MTLS_BOOTSTRAP=127.0.0.1:$MPORT"
echo "KWQ_KAFKA_TLS_CLIENT_CERT=$TLS/client.crt"
echo "KWQ_KAFKA_TLS_CLIENT_KEY=$TLS/client.key"
[ -z "${IPORT:-}" ] || echo "KWQ_KAFKA_ISOLABLE_PORTS=$APORT:$IPORT"
echo "KWQ_KAFKA_STATE=$STATE"
