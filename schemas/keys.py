"""Every Redis key format Tributary uses, in one place.

Keys are `<namespace>:<kind>:…`. Per-user keys carry the user as a Redis Cluster hash tag
(`{user}`), so all of one user's keys live in one slot and a script may touch several.
"""

from __future__ import annotations


def user_tag(user_id: str) -> str:
    """`{user_id}`: a Redis Cluster hash tag (user ids hold no braces: `USER_ID_PATTERN`)."""
    return f"{{{user_id}}}"


def api_keys(namespace: str) -> str:
    """The hash of users' API keys: SHA-256 of a key -> its user (gateway)."""
    return f"{namespace}:apikeys"


def idempotency(namespace: str, route: str, user_id: str, digest: str) -> str:
    """A stored answer to a request with an Idempotency-Key (`digest`: of the key)."""
    return f"{namespace}:idem:{route}:{user_tag(user_id)}:{digest}"


def rate_limit(namespace: str, policy: str, window: str, user_id: str) -> str:
    """A user's GCRA state for one window of one rate-limit policy."""
    return f"{namespace}:rl:{policy}:{window}:{user_tag(user_id)}"


def gpu_pool(namespace: str, name: str) -> str:
    """The sorted set of leased slots of GPU pool `name` (every worker's executors)."""
    return f"{namespace}:gpu-pool:{name}"


def job(namespace: str, job_id: str) -> str:
    """The hash with a job's status (written by the status projector, read by the gateway)."""
    return f"{namespace}:job:{job_id}"


def container(namespace: str, container_id: str) -> str:
    """The hash with a container's status (written by the status projector)."""
    return f"{namespace}:container:{container_id}"


def push_stream(namespace: str, user_id: str) -> str:
    """The Redis Stream of a user's sequenced events; entry ids are `<seq>-0`."""
    return f"{namespace}:push:{user_tag(user_id)}"


def is_push_stream(namespace: str, key: str) -> bool:
    """Whether `key` is a user's events stream (`push_stream`: entry ids `<seq>-0`)."""
    return key.startswith(f"{namespace}:push:")


def push_notices(namespace: str) -> str:
    """The Pub/Sub channel where the push and status projectors name the streams they just
    appended to (a JSON list of keys), so one reader per gateway knows what to read."""
    return f"{namespace}:push-notices"


def container_stream(namespace: str, container_id: str) -> str:
    """The Redis Stream of one container's events (its room: state, display ready, exited)."""
    return f"{namespace}:push-container:{{{container_id}}}"


def jobs_stream(namespace: str, user_id: str) -> str:
    """The Redis Stream of a user's job steps (queued, active, progress, ...)."""
    return f"{namespace}:push-jobs:{user_tag(user_id)}"


def dlq_retried(namespace: str) -> str:
    """The set of dead letters (`partition:offset` on the DLQ) the dashboard sent back to
    their origin, so its list shows what still waits (`dashboard/`)."""
    return f"{namespace}:dlq:retried"
