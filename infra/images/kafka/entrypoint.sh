#!/bin/bash
# server.properties from KAFKA_* variables, named as the apache/kafka image names them:
# KAFKA_LOG_DIRS -> log.dirs, `__` -> `_`, `___` -> `-`. The *_OPTS variables are the JVM's.
# Storage is formatted once with CLUSTER_ID, then the broker runs in the foreground.
set -euo pipefail
config=/opt/kafka/config/server.properties
: > "$config"
for name in $(compgen -e | grep '^KAFKA_' | grep -v '_OPTS$'); do
  key=$(echo "${name#KAFKA_}" | tr '[:upper:]' '[:lower:]' \
    | sed -e 's/___/-/g' -e 's/__/@/g' -e 's/_/./g' -e 's/@/_/g')
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
exec java ${KAFKA_HEAP_OPTS:-} -XX:+UseG1GC -Djava.awt.headless=true ${KAFKA_JVM_PERFORMANCE_OPTS:-} \
  ${KAFKA_OPTS:-} $logging -cp "$cp" kafka.Kafka "$config"
