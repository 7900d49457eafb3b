#!/bin/bash
# server.properties from KAFKA_* variables (KAFKA_LOG_DIRS -> log.dirs), storage formatted
# once with CLUSTER_ID, then the broker in the foreground.
set -euo pipefail
config=/opt/kafka/config/server.properties
: > "$config"
for name in $(compgen -e | grep '^KAFKA_' | grep -v '^KAFKA_HEAP_OPTS$'); do
  key=$(echo "${name#KAFKA_}" | tr '[:upper:]' '[:lower:]' | tr '_' '.')
  echo "$key=${!name}" >> "$config"
done
grep -q '^log.dirs=' "$config" || echo "log.dirs=/var/lib/kafka/data" >> "$config"
grep -q '^log.cleaner.dedupe.buffer.size=' "$config" || echo "log.cleaner.dedupe.buffer.size=33554432" >> "$config"
cp="/opt/kafka/libs/*"
logging="-Dlog4j2.configurationFile=/opt/kafka/config/log4j2.properties"
data=$(grep '^log.dirs=' "$config" | cut -d= -f2)
if [ ! -f "$data/meta.properties" ]; then
  java $logging -cp "$cp" kafka.tools.StorageTool format -t "${CLUSTER_ID:?set CLUSTER_ID}" -c "$config" --ignore-formatted
fi
exec java $KAFKA_HEAP_OPTS -XX:+UseG1GC -Djava.awt.headless=true $logging -cp "$cp" kafka.Kafka "$config"
