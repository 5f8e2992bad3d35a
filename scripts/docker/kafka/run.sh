#!/usr/bin/env bash
# Entry point of the Kafka image: writes the broker's configuration from the
# environment, formats the storage on a first start, then runs the broker
# in the foreground (SIGTERM stops it cleanly).
set -euo pipefail
data=/var/lib/kafka
cat >"$data/server.properties" <<CONF
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:9093
listeners=PLAINTEXT://0.0.0.0:9092,HOST://0.0.0.0:29092,CONTROLLER://127.0.0.1:9093
advertised.listeners=PLAINTEXT://$KAFKA_ADVERTISED_HOST:9092,HOST://localhost:$KAFKA_HOST_PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,HOST:PLAINTEXT
log.dirs=$data/log
num.partitions=$KAFKA_NUM_PARTITIONS
default.replication.factor=1
auto.create.topics.enable=true
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
CONF
cat >"$data/log4j2.properties" <<'CONF'
status = warn
appender.out.type = Console
appender.out.name = out
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = info
rootLogger.appenderRef.out.ref = out
CONF
java=(java -Dlog4j2.configurationFile="$data/log4j2.properties" -cp '/opt/kafka/libs/*')
if [ ! -f "$data/log/meta.properties" ]; then
  # A Kafka Uuid: 16 random bytes, URL-safe base64 without padding, never
  # starting with "-" (the storage tool would take it for an option).
  id=-
  while [[ $id == -* ]]; do
    id=$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=')
  done
  "${java[@]}" -Xmx128m kafka.tools.StorageTool format -t "$id" -c "$data/server.properties"
fi
exec "${java[@]}" -Xms128m -Xmx"$KAFKA_HEAP" -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
  -Djava.awt.headless=true kafka.Kafka "$data/server.properties"
