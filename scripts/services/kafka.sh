#!/usr/bin/env bash
# A real Apache Kafka broker for tests: one KRaft node that is both broker and
# controller, on loopback ports chosen at run time, run from the broker jars
# of Maven Central on this machine's JDK (Kafka 4.x brokers need Java 17+).
#
#   kafka.sh fetch                 download the jars once into the cache
#   kafka.sh start DIR             config, storage, logs and pid in DIR; prints
#                                  KAFKA_BOOTSTRAP=127.0.0.1:<port> when the
#                                  broker answers. On a DIR that already ran a
#                                  broker it starts it again: same ports, same
#                                  data.
#   kafka.sh stop DIR              SIGTERM the broker started in DIR, SIGKILL
#                                  after KAFKA_STOP_TIMEOUT seconds (30)
#   kafka.sh restart DIR           stop, then start on the same port and data
#   kafka.sh create-topic DIR TOPIC PARTITIONS
#   kafka.sh bootstrap DIR         prints 127.0.0.1:<port> of DIR's broker
#   kafka.sh run-class DIR CLASS ARGS...
#                                  runs a main class of the jars (for example
#                                  org.apache.kafka.tools.TopicCommand)
#
# Environment: KAFKA_VERSION (4.4.0), MQ_CACHE (~/.cache/memquorum),
# KAFKA_HEAP (512m), KAFKA_START_TIMEOUT (90 s), JAVA (a java binary).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lib.sh
. "$here/lib.sh"

KAFKA_VERSION=${KAFKA_VERSION:-4.4.0}
KAFKA_HEAP=${KAFKA_HEAP:-512m}
cache="$MQ_CACHE/kafka-$KAFKA_VERSION"
libs="$cache/libs"
# In 4.x the storage tool is still the Scala object in the core jar.
storage_tool=kafka.tools.StorageTool

usage() {
  sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2
  exit 2
}

# ---------------------------------------------------------------- fetch

fetch() {
  if [ -f "$cache/.complete" ]; then
    return 0
  fi
  command -v mvn >/dev/null || mq_die "maven (mvn) is missing: run scripts/install-services.sh"
  mq_log "fetching Kafka $KAFKA_VERSION jars into $cache"
  rm -rf "$cache"
  mkdir -p "$cache"
  # kafka_2.13 is the broker (kafka.Kafka, kafka.tools.StorageTool);
  # kafka-tools has the admin and console main classes. Connect's runtime,
  # which kafka-tools pulls in for one plugin tool, is left out: 20 MB of
  # Jetty and Jersey no broker test needs. log4j-slf4j-impl routes the
  # broker's SLF4J 1.7 logging to log4j2, as the Kafka distribution does;
  # without a binding the broker logs nothing.
  cat >"$cache/pom.xml" <<EOF
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>memquorum.services</groupId>
  <artifactId>kafka-runtime</artifactId>
  <version>$KAFKA_VERSION</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId>
      <version>$KAFKA_VERSION</version>
    </dependency>
    <dependency>
      <groupId>org.apache.kafka</groupId><artifactId>kafka-tools</artifactId>
      <version>$KAFKA_VERSION</version>
      <exclusions>
        <exclusion><groupId>org.apache.kafka</groupId><artifactId>connect-runtime</artifactId></exclusion>
      </exclusions>
    </dependency>
    <dependency>
      <groupId>org.apache.logging.log4j</groupId><artifactId>log4j-slf4j-impl</artifactId>
      <version>2.25.5</version>
    </dependency>
  </dependencies>
</project>
EOF
  if ! mvn -B -q -f "$cache/pom.xml" dependency:copy-dependencies \
      -DincludeScope=runtime -DoutputDirectory="$libs" >"$cache/fetch.log" 2>&1; then
    tail -n 30 "$cache/fetch.log" >&2
    mq_die "maven could not fetch Kafka $KAFKA_VERSION (log: $cache/fetch.log)"
  fi
  [ -f "$libs/kafka_2.13-$KAFKA_VERSION.jar" ] || mq_die "no broker jar in $libs"
  touch "$cache/.complete"
  mq_log "cached $(find "$libs" -name '*.jar' | wc -l) jars ($(du -sh "$libs" | cut -f1))"
}

# ---------------------------------------------------------------- java

java_major() { # JAVA -> major version number
  "$1" -XshowSettings:properties -version 2>&1 |
    sed -n 's/^ *java\.specification\.version = \([0-9]*\).*/\1/p'
}

find_java() {
  local c
  for c in "${JAVA:-}" "${JAVA_HOME:+$JAVA_HOME/bin/java}" "$(command -v java || true)" \
           /usr/lib/jvm/java-17-openjdk-amd64/bin/java /usr/lib/jvm/temurin-25-jdk-amd64/bin/java; do
    [[ -n $c && -x $c ]] || continue
    if [ "$(java_major "$c")" -ge 17 ] 2>/dev/null; then
      echo "$c"
      return 0
    fi
  done
  mq_die "no Java 17 or newer found (set JAVA=/path/to/java)"
}

# java_run DIR CLASS ARGS...: runs CLASS in the foreground with small heap.
java_run() {
  local dir=$1 class=$2
  shift 2
  local log=()
  [ -f "$dir/log4j2.properties" ] && log=(-Dlog4j2.configurationFile="$dir/log4j2.properties")
  "$(find_java)" -Xms64m -Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 \
    "${log[@]}" -cp "$libs/*" "$class" "$@"
}

# ---------------------------------------------------------------- start/stop

write_config() { # DIR PORT CONTROLLER_PORT
  local dir=$1 port=$2 cport=$3
  cat >"$dir/server.properties" <<EOF
# Written by scripts/services/kafka.sh: one KRaft node, loopback only.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$cport
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport
advertised.listeners=PLAINTEXT://127.0.0.1:$port
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$dir/data
num.partitions=1
default.replication.factor=1
auto.create.topics.enable=true
offsets.topic.replication.factor=1
offsets.topic.num.partitions=8
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
num.network.threads=2
num.io.threads=4
background.threads=4
log.retention.hours=24
EOF
  cat >"$dir/log4j2.properties" <<EOF
# Broker log in $dir/server.log, warnings and errors also on stderr
# (kafka.out).
status = warn
appender.file.type = File
appender.file.name = file
appender.file.fileName = $dir/server.log
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
appender.err.type = Console
appender.err.name = err
appender.err.target = SYSTEM_ERR
appender.err.layout.type = PatternLayout
appender.err.layout.pattern = [%d] %p %m (%c)%n
appender.err.filter.threshold.type = ThresholdFilter
appender.err.filter.threshold.level = warn
rootLogger.level = info
rootLogger.appenderRef.file.ref = file
rootLogger.appenderRef.err.ref = err
logger.kafka.name = kafka
logger.kafka.level = info
logger.apache.name = org.apache.kafka
logger.apache.level = info
EOF
}

port_of() { # DIR -> broker port from DIR/server.properties
  sed -n 's|^advertised.listeners=PLAINTEXT://127.0.0.1:\([0-9]*\)$|\1|p' "$1/server.properties"
}

cport_of() {
  sed -n 's|^controller.quorum.voters=1@127.0.0.1:\([0-9]*\)$|\1|p' "$1/server.properties"
}

start() {
  local dir=$1 port cport java pid
  [ -f "$cache/.complete" ] || fetch
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  if mq_pid_alive "$dir/kafka.pid" "$dir/server.properties" >/dev/null; then
    mq_die "a broker started in $dir still runs (pid $(cat "$dir/kafka.pid")); stop it first"
  fi
  if [ -f "$dir/server.properties" ]; then
    # A restart: the same ports, so clients and the agent under test can
    # reconnect to the address they were given.
    port=$(port_of "$dir")
    cport=$(cport_of "$dir")
    [[ -n $port && -n $cport ]] || mq_die "$dir/server.properties was not written by this script"
    local p
    for p in "$port" "$cport"; do
      local until=$((SECONDS + 30))
      until mq_port_is_free "$p"; do
        ((SECONDS < until)) || mq_die "port $p of $dir is taken by another process"
        sleep 0.2
      done
    done
  else
    read -r port cport < <(mq_free_ports 2)
    write_config "$dir" "$port" "$cport"
  fi
  if [ ! -f "$dir/data/meta.properties" ]; then
    local cluster_id
    # A Kafka Uuid: 16 random bytes in URL-safe base64. Like Kafka's own
    # Uuid.randomUuid(), never one that starts with "-": the storage tool's
    # argument parser would take it for an option (1 in 64 ids).
    cluster_id=$(python3 -c 'import base64, uuid
while True:
    s = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
    if not s.startswith("-"):
        print(s)
        break')
    java_run "$dir" "$storage_tool" format -t "$cluster_id" -c "$dir/server.properties" \
      >"$dir/format.log" 2>&1 || { cat "$dir/format.log" >&2; mq_die "formatting storage failed"; }
  fi
  java=$(find_java)
  # Heap and GC as the distribution's kafka-server-start.sh sets them, heap
  # smaller: this runs beside the agents on a two-core machine.
  "$java" -Xms128m -Xmx"$KAFKA_HEAP" -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
    -XX:InitiatingHeapOccupancyPercent=35 -XX:+ExplicitGCInvokesConcurrent \
    -Djava.awt.headless=true -Dkafka.logs.dir="$dir" \
    -Dlog4j2.configurationFile="$dir/log4j2.properties" \
    -cp "$libs/*" kafka.Kafka "$dir/server.properties" \
    </dev/null >>"$dir/kafka.out" 2>&1 &
  pid=$!
  echo "$pid" >"$dir/kafka.pid"
  if ! python3 "$here/kafka_client.py" wait "127.0.0.1:$port" "${KAFKA_START_TIMEOUT:-90}" "$pid"; then
    tail -n 20 "$dir/kafka.out" "$dir/server.log" >&2 2>/dev/null || true
    mq_stop_pid "$dir/kafka.pid" "$dir/server.properties" 10
    mq_die "broker in $dir did not become ready"
  fi
  echo "KAFKA_BOOTSTRAP=127.0.0.1:$port"
}

stop() {
  local dir
  [ -d "$1" ] || mq_die "no such directory: $1"
  dir=$(cd "$1" && pwd)
  # The pid must still run the broker of this DIR's config: never another.
  mq_stop_pid "$dir/kafka.pid" "$dir/server.properties" "${KAFKA_STOP_TIMEOUT:-30}"
}

# ---------------------------------------------------------------- main

cmd=${1:-}
[ $# -ge 1 ] && shift
case $cmd in
  fetch) fetch ;;
  start) [ $# -eq 1 ] || usage; start "$1" ;;
  stop) [ $# -eq 1 ] || usage; stop "$1" ;;
  restart)
    [ $# -eq 1 ] || usage
    [ -f "$1/server.properties" ] || mq_die "$1 has no broker to restart"
    stop "$1"
    start "$1"
    ;;
  bootstrap) [ $# -eq 1 ] || usage; echo "127.0.0.1:$(port_of "$1")" ;;
  create-topic)
    [ $# -eq 3 ] || usage
    python3 "$here/kafka_client.py" create-topic "127.0.0.1:$(port_of "$1")" "$2" "$3"
    ;;
  run-class)
    [ $# -ge 2 ] || usage
    [ -f "$cache/.complete" ] || fetch
    d=$1 class=$2
    shift 2
    java_run "$d" "$class" "$@"
    ;;
  *) usage ;;
esac
