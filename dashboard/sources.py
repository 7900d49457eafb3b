"""Where the dashboard reads and writes: the DLQ topic, consumer groups' offsets, the status
hashes and the retried-letters set in Redis, ClickHouse through the projector's query API
(with the admin key), and every process's health pages."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import httpx
from aiokafka import TopicPartition
from redis.asyncio import Redis

from schemas import keys
from schemas.dead_letters import Letter
from schemas.groups import GROUPS
from schemas.status import JobStatus
from streams import dlq_admin
from streams.dlq_admin import Placed
from tributary import admin
from tributary.kafka_clients import admin_client, committed_reader, started
from tributary.settings import Settings

QUERY_TRIES = 5
Committed = dict[str, dict[tuple[str, int], int]]  # group -> (topic, partition) -> offset
Ends = dict[tuple[str, int], int]  # (topic, partition) -> end offset


class QueryFailed(RuntimeError):
    """The projector refused or could not run a query (its answer is the message)."""


@dataclass(frozen=True)
class Health:
    process: str
    url: str
    ready: int | None  # the status code of /healthz/ready; None: no answer
    live: int | None
    detail: dict[str, Any]  # what readiness said (stalled partitions, loops, draining)
    live_detail: dict[str, Any]  # what liveness said (stuck loops, memory)


class Sources:
    def __init__(self, settings: Settings, redis: Redis, http: httpx.AsyncClient) -> None:
        self.settings = settings
        self.redis = redis
        self.http = http
        self.db = settings.clickhouse_database
        self._retried_key = keys.dlq_retried(settings.namespace)
        self._one_query = asyncio.Lock()

    # The DLQ ---------------------------------------------------------------------------

    async def letters(self) -> list[Letter]:
        return await dlq_admin.read(self.settings)

    async def retried(self) -> set[str]:
        members: set[bytes] = await self.redis.smembers(self._retried_key)  # type: ignore[misc,assignment]
        return {m.decode() for m in members}

    async def retry(self, letters: list[Letter]) -> list[Placed]:
        """Send `letters` back to their origin; remember them as retried (a letter that
        could not be sent back stays listed)."""
        placed = await dlq_admin.retry(self.settings, letters)
        sent = [p.letter.position for p in placed if p.sent]
        if sent:
            await self.redis.sadd(self._retried_key, *sent)  # type: ignore[misc]
        return placed

    async def purge(self) -> int:
        count = await dlq_admin.purge(self.settings)
        await self.redis.delete(self._retried_key)
        return count

    # Consumer lag ----------------------------------------------------------------------

    async def offsets(self) -> tuple[dict[str, list[str]], Committed, Ends]:
        """Each group's topics, each group's committed offsets, each partition's end."""
        ns = self.settings.namespace
        groups = {g.physical(ns): [t.physical(ns) for t in g.topics] for g in GROUPS}
        topics = sorted({t for ts in groups.values() for t in ts})
        committed: Committed = {}
        async with admin_client(self.settings.kafka_bootstrap, start_timeout_s=10) as kafka:
            described = await kafka.describe_topics(topics)
            for group in groups:
                offsets = await kafka.list_consumer_group_offsets(group)
                committed[group] = {
                    (tp.topic, tp.partition): meta.offset
                    for tp, meta in offsets.items()
                    if meta.offset >= 0
                }
        tps = [
            TopicPartition(t["topic"], p["partition"])
            for t in described
            if not t.get("error_code")
            for p in t["partitions"]
        ]
        async with started(committed_reader(self.settings.kafka_bootstrap)) as consumer:
            ends = await consumer.end_offsets(tps)
        return groups, committed, {(tp.topic, tp.partition): end for tp, end in ends.items()}

    # Jobs ---------------------------------------------------------------

    async def job_status(self, job_id: str) -> JobStatus | None:
        key = keys.job(self.settings.namespace, job_id)
        raw: dict[bytes, bytes] = await self.redis.hgetall(key)  # type: ignore[misc,assignment]
        return JobStatus.from_fields(raw) if raw else None

    async def query(self, sql: str) -> list[list[Any]]:
        """The rows of `sql`, run by the projector on ClickHouse as an analyst query.

        One at a time: the projector runs few analyst queries at once
        (`TRIBUTARY_QUERY_CONCURRENCY`) and answers 429 past them; a 429 (another analyst's
        query running) is waited out a few times before the page says so."""
        async with self._one_query:
            for attempt in range(QUERY_TRIES):
                try:
                    response = await self.http.post(
                        f"{self.settings.projector_url}/query",
                        json={"sql": sql},
                        headers=admin.client_headers(self.settings),
                    )
                except httpx.HTTPError as exc:
                    raise QueryFailed(f"the projector did not answer: {exc!r}") from exc
                if response.status_code != 429 or attempt == QUERY_TRIES - 1:
                    break
                await asyncio.sleep(min(2.0, float(response.headers.get("retry-after", 1))))
        if response.status_code != 200:
            raise QueryFailed(f"{response.status_code}: {response.text[:300]}")
        return response.json()["rows"]  # type: ignore[no-any-return]

    # Health ------------------------------------------------------------------------------

    def processes(self) -> list[tuple[str, str]]:
        s = self.settings
        return [
            ("gateway", s.gateway_url),
            ("worker", s.worker_url),
            ("projector", s.projector_url),
        ]

    async def health(self) -> list[Health]:
        return list(await asyncio.gather(*(self._health(n, u) for n, u in self.processes())))

    async def _health(self, process: str, url: str) -> Health:
        (ready, detail), (live, live_detail) = await asyncio.gather(
            self._probe(f"{url}/healthz/ready"), self._probe(f"{url}/healthz/live")
        )
        return Health(process, url, ready, live, detail, live_detail)

    async def _probe(self, url: str) -> tuple[int | None, dict[str, Any]]:
        try:
            response = await self.http.get(url, timeout=3)
        except httpx.HTTPError as exc:
            return None, {"error": repr(exc)}
        try:
            body = response.json()
        except ValueError:
            body = {"body": response.text[:300]}
        return response.status_code, body if isinstance(body, dict) else {"body": body}
