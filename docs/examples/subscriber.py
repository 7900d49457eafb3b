"""A Tributary subscriber in Python: confluent-kafka and the CloudEvents SDK.

Reads TOPICs in consumer group GROUP, read_committed, from the earliest record the group has
not consumed. Each record is parsed as a CloudEvent (binary content mode); its `data` is
validated against the JSON Schema its `dataschema` names, looked up in SCHEMAS (the
repository's `schemas/published` folder, or a gateway's `/v1/schemas` URL); duplicates are
dropped by CloudEvents (source, id). It stops once it has read every partition up to the
end it saw on start, commits, and prints one JSON line: what it read, and anything invalid.

    python subscriber.py --bootstrap localhost:9092 --group my-service \\
        --schemas schemas/published demo.events.counted demo.jobs.events
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import jsonschema
from cloudevents.kafka import KafkaMessage, from_binary
from confluent_kafka import Consumer, TopicPartition

URN = "urn:tributary:schema:"
REQUIRED = ("specversion", "id", "source", "type", "subject", "time", "dataschema")


class Schemas:
    """JSON Schemas by `dataschema`, from a folder or a gateway, each fetched once."""

    def __init__(self, where: str) -> None:
        self.where = where
        self.cache: dict[str, jsonschema.Draft202012Validator] = {}

    def validator(self, dataschema: str) -> jsonschema.Draft202012Validator:
        if dataschema not in self.cache:
            event_type, _, version = dataschema.removeprefix(URN).rpartition(":")
            if self.where.startswith(("http://", "https://")):
                url = f"{self.where.rstrip('/')}/{event_type}/{version}"
                with urllib.request.urlopen(url, timeout=10) as answer:
                    schema = json.load(answer)
            else:
                schema = json.loads((Path(self.where) / event_type / f"{version}.json").read_text())
            self.cache[dataschema] = jsonschema.Draft202012Validator(schema)
        return self.cache[dataschema]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--group", required=True)
    parser.add_argument("--schemas", required=True)
    parser.add_argument("--timeout-s", type=float, default=120)
    parser.add_argument("topics", nargs="+")
    args = parser.parse_args()

    consumer = Consumer(
        {
            "bootstrap.servers": args.bootstrap,
            "group.id": args.group,
            "isolation.level": "read_committed",  # never see an aborted transaction's records
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,  # commit after processing: at-least-once
        }
    )
    # The end of every partition now: stop there (a long-running service would not).
    ends: dict[tuple[str, int], int] = {}
    for topic in args.topics:
        for partition in consumer.list_topics(topic, timeout=10).topics[topic].partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
            if high > low:
                ends[(topic, partition)] = high
    consumer.subscribe(args.topics)

    schemas = Schemas(args.schemas)
    seen: set[tuple[str, str, str]] = set()
    read: dict[str, int] = {t: 0 for t in args.topics}
    types: dict[str, int] = {}
    duplicates = 0
    invalid: list[dict[str, Any]] = []
    deadline = time.monotonic() + args.timeout_s
    while ends and time.monotonic() < deadline:
        message = consumer.poll(1.0)
        if message is not None and message.error() is None:
            topic = str(message.topic())
            read[topic] += 1
            where = f"{topic}:{message.partition()}:{message.offset()}"
            try:
                raw = message.headers() or []
                pairs = raw.items() if isinstance(raw, dict) else raw
                headers = {k: v for k, v in pairs if isinstance(v, bytes)}
                # The SDK fills in a missing id or time itself: check the record has them.
                for attribute in REQUIRED:
                    if f"ce_{attribute}" not in headers:
                        raise ValueError(f"no ce_{attribute} header")
                event = from_binary(
                    KafkaMessage(headers=headers, key=message.key(), value=message.value() or b"")
                )
                schemas.validator(event["dataschema"]).validate(event.data)
            except Exception as exc:
                invalid.append({"at": where, "error": str(exc)[:300]})
            else:
                # A bumped type is written twice (same id, one per version) for a while: a
                # service reads the version it knows; this example reads both, so it keys
                # its dedup by version too.
                identity = (event["source"], event["id"], event["dataschema"])
                if identity in seen:
                    duplicates += 1  # delivered again (at-least-once): already handled
                else:
                    seen.add(identity)
                    types[event["type"]] = types.get(event["type"], 0) + 1
        assigned = consumer.assignment()
        if assigned:
            # Where the group is in each partition: its position once it has fetched there,
            # else its committed offset (a partition with nothing new has no position yet).
            positions = consumer.position(assigned)
            unknown = [tp for tp in positions if tp.offset < 0]
            for tp in [*positions, *(consumer.committed(unknown, timeout=10) if unknown else [])]:
                if tp.offset >= 0 and ends.get((tp.topic, tp.partition), 0) <= tp.offset:
                    ends.pop((tp.topic, tp.partition), None)
    if sum(read.values()):
        consumer.commit(asynchronous=False)
    consumer.close()
    print(
        json.dumps(
            {
                "read": read,
                "types": types,
                "duplicates": duplicates,
                "invalid": invalid[:20],
                "invalid_count": len(invalid),
                "unfinished": sorted(f"{t}:{p}" for t, p in ends),
            }
        )
    )
    return 0 if not invalid and not ends else 1


if __name__ == "__main__":
    sys.exit(main())
