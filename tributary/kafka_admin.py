"""Small Kafka admin look-ups shared by the projections and the streams tooling."""

from __future__ import annotations

from aiokafka.admin import AIOKafkaAdminClient


async def partitions(bootstrap: str, topic: str) -> list[int]:
    """The partition ids of `topic`; raises RuntimeError if the topic does not exist."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        described = await admin.describe_topics([topic])
    finally:
        await admin.close()
    if not described or described[0].get("error_code"):
        raise RuntimeError(f"topic {topic} does not exist")
    return [p["partition"] for p in described[0]["partitions"]]
