#!/usr/bin/env bash
# Start/stop a local Apache Kafka (KRaft, one node) for gridcast: scripts/kafka.sh up|down|status
#
# No Docker needed: the broker's jars come from Maven Central (org.apache.kafka:kafka_2.13)
# into a cache folder outside git, the storage is formatted on first start, and the
# broker runs in the background exactly as Kafka's own scripts would run it
# (java -cp 'libs/*' kafka.Kafka server.properties), with a modest heap.
# Idempotent: `up` when the broker answers does nothing; `down` when stopped does nothing.
#
# Environment (defaults in brackets):
#   KAFKA_PORT [9092]  KAFKA_CONTROLLER_PORT [KAFKA_PORT+1]  KAFKA_VERSION [4.1.0]
#   KAFKA_HOME [~/.cache/gridcast/kafka]  (jars: $KAFKA_HOME/libs)
#   KAFKA_DIR  [$KAFKA_HOME/node-$KAFKA_PORT]  (config, data, logs, pid of this instance)
#   KAFKA_HEAP [512m]
# Tests use other ports and dirs for PRIVATE brokers they may stop and restart.
set -euo pipefail
PORT="${KAFKA_PORT:-9092}"
CPORT="${KAFKA_CONTROLLER_PORT:-$((PORT + 1))}"
VERSION="${KAFKA_VERSION:-4.1.0}"
HOME_DIR="${KAFKA_HOME:-$HOME/.cache/gridcast/kafka}"
LIBS="$HOME_DIR/libs"
DIR="${KAFKA_DIR:-$HOME_DIR/node-$PORT}"
HEAP="${KAFKA_HEAP:-512m}"
PIDFILE="$DIR/kafka.pid"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PY="${PYTHON:-$HERE/../.venv/bin/python}"
[ -x "$PY" ] || PY=python3

# "Answers" = a Kafka client gets cluster metadata back, not merely an open port.
answers() {
  "$PY" - "$PORT" <<'PYEOF' >/dev/null 2>&1
import asyncio, sys
from aiokafka.admin import AIOKafkaAdminClient
async def main():
    admin = AIOKafkaAdminClient(bootstrap_servers=f"127.0.0.1:{sys.argv[1]}", request_timeout_ms=3000)
    await asyncio.wait_for(admin.start(), 5)
    try:
        await asyncio.wait_for(admin.describe_cluster(), 5)
    finally:
        await admin.close()
asyncio.run(main())
PYEOF
}

running_pid() {
  [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null && cat "$PIDFILE"
}

ensure_jars() {
  if ls "$LIBS"/kafka_2.13-"$VERSION".jar >/dev/null 2>&1; then return 0; fi
  command -v mvn >/dev/null || { echo "kafka.sh: needs Maven (make system-deps)" >&2; return 1; }
  echo "kafka.sh: fetching Apache Kafka $VERSION jars from Maven Central into $LIBS (once)" >&2
  local pom="$HOME_DIR/pom"; mkdir -p "$pom"
  cat > "$pom/pom.xml" <<POM
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>gridcast</groupId><artifactId>kafka-runtime</artifactId><version>1</version>
  <dependencies>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId><version>$VERSION</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-slf4j2-impl</artifactId><version>2.24.3</version></dependency>
    <dependency><groupId>org.slf4j</groupId><artifactId>slf4j-api</artifactId><version>2.0.16</version></dependency>
  </dependencies>
</project>
POM
  rm -rf "$LIBS.tmp"
  mvn -q -B -f "$pom/pom.xml" dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$LIBS.tmp"
  rm -rf "$LIBS" && mv "$LIBS.tmp" "$LIBS"
}

write_config() {
  mkdir -p "$DIR/data"
  cat > "$DIR/server.properties" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$CPORT
listeners=PLAINTEXT://127.0.0.1:$PORT,CONTROLLER://127.0.0.1:$CPORT
advertised.listeners=PLAINTEXT://127.0.0.1:$PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$DIR/data
num.partitions=3
auto.create.topics.enable=true
offsets.topic.replication.factor=1
offsets.topic.num.partitions=10
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
# one node, many short-lived test groups: no reason to wait before the first rebalance
group.initial.rebalance.delay.ms=0
# the observations topic is the state's log: keep more than the history window (state_max_points
# steps = 10 weeks by default) + max_future_s; the bridge also sets retention.ms on the topic it creates
log.retention.hours=1900
PROPS
  cat > "$DIR/log4j2.properties" <<LOG
status = warn
appender.file.type = RollingFile
appender.file.name = FILE
appender.file.fileName = $DIR/server.log
appender.file.filePattern = $DIR/server.log.%i
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
appender.file.policies.type = Policies
appender.file.policies.size.type = SizeBasedTriggeringPolicy
appender.file.policies.size.size = 10MB
appender.file.strategy.type = DefaultRolloverStrategy
appender.file.strategy.max = 2
rootLogger.level = WARN
rootLogger.appenderRef.file.ref = FILE
logger.server.name = kafka.server.KafkaRaftServer
logger.server.level = INFO
LOG
}

up() {
  if answers; then echo "kafka: already running on 127.0.0.1:$PORT"; return 0; fi
  if pid=$(running_pid); then
    echo "kafka: process $pid exists but does not answer yet; waiting" >&2
  else
    command -v java >/dev/null || { echo "kafka.sh: needs Java 17 (make system-deps)" >&2; return 1; }
    ensure_jars
    write_config
    if [ ! -f "$DIR/data/meta.properties" ]; then
      local cluster_id
      cluster_id=$(java -cp "$LIBS/*" kafka.tools.StorageTool random-uuid)
      java -Dlog4j2.configurationFile="$DIR/log4j2.properties" -cp "$LIBS/*" kafka.tools.StorageTool format \
        -t "$cluster_id" -c "$DIR/server.properties" --ignore-formatted >"$DIR/format.log" 2>&1 \
        || { echo "kafka.sh: storage format failed; see $DIR/format.log" >&2; return 1; }
    fi
    nohup setsid java -Xms128m -Xmx"$HEAP" -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -Djava.awt.headless=true \
      -Dlog4j2.configurationFile="$DIR/log4j2.properties" -Dkafka.logs.dir="$DIR" \
      -cp "$LIBS/*" kafka.Kafka "$DIR/server.properties" >"$DIR/stdout.log" 2>&1 < /dev/null &
    echo $! > "$PIDFILE"
  fi
  for _ in $(seq 1 90); do
    if answers; then echo "kafka: up on 127.0.0.1:$PORT (pid $(cat "$PIDFILE"), logs $DIR/server.log)"; return 0; fi
    if ! running_pid >/dev/null; then
      echo "kafka.sh: the broker exited; see $DIR/server.log and $DIR/stdout.log" >&2; return 1
    fi
    sleep 1
  done
  echo "kafka.sh: the broker did not answer on port $PORT within 90 s; see $DIR/server.log" >&2
  return 1
}

down() {
  local pid
  if pid=$(running_pid); then
    kill "$pid"
    for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    if kill -0 "$pid" 2>/dev/null; then echo "kafka: did not stop in 30 s; killing" >&2; kill -9 "$pid"; fi
  fi
  rm -f "$PIDFILE"
  echo "kafka: down (port $PORT)"
}

status() {
  if answers; then echo "kafka: running on 127.0.0.1:$PORT"; else echo "kafka: not running (port $PORT)"; return 3; fi
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  status) status ;;
  *) echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac
