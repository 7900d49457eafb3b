"""The SQL the dashboard asks ClickHouse (through the projector's analyst query API).

Ids are checked against their patterns (`dashboard.views.valid_user` / `valid_id`) before
they get here, and those patterns hold no quote or backslash.
"""

from __future__ import annotations

WINDOW_MINUTES = 60


def events_per_minute(db: str, minutes: int = WINDOW_MINUTES) -> str:
    return (
        f"SELECT minute, sum(events) / 60 FROM {db}.events_per_user_minute"
        f" WHERE minute >= toStartOfMinute(now()) - INTERVAL {minutes} MINUTE"
        " GROUP BY minute ORDER BY minute"
    )


def job_latency_per_minute(db: str, minutes: int = WINDOW_MINUTES) -> str:
    return (
        f"SELECT minute, quantilesMerge(0.5, 0.9, 0.99)(latency)"
        f" FROM {db}.inference_latency_per_minute"
        f" WHERE minute >= toStartOfMinute(now()) - INTERVAL {minutes} MINUTE"
        " GROUP BY minute ORDER BY minute"
    )


def dead_letters_per_minute(db: str, minutes: int = WINDOW_MINUTES) -> str:
    return (
        f"SELECT toStartOfMinute(time) AS minute, count() FROM {db}.dead_letters"
        f" WHERE time >= toStartOfMinute(now()) - INTERVAL {minutes} MINUTE"
        " GROUP BY minute ORDER BY minute"
    )


def user_jobs(db: str, user_id: str, limit: int = 200) -> str:
    """A user's jobs, newest first: kind, state and attempt now, first and last step. Steps
    of one decision share a time; the offset on the (user-keyed) topic orders them."""
    return (
        "SELECT job_id, any(kind), argMax(state, (time, _offset)), max(attempt),"
        f" min(time) AS first, max(time) FROM {db}.jobs_events WHERE user_id = '{user_id}'"
        f" GROUP BY job_id ORDER BY first DESC LIMIT {limit}"
    )


def user_containers(db: str, user_id: str, limit: int = 200) -> str:
    """A user's containers, newest first: state, reason and exit code now, first and last."""
    return (
        "SELECT container_id, argMax(state, (time, _offset)), argMax(reason, (time, _offset)),"
        " argMax(exit_code, (time, _offset)), min(time) AS first, max(time)"
        f" FROM {db}.containers_events WHERE user_id = '{user_id}'"
        f" GROUP BY container_id ORDER BY first DESC LIMIT {limit}"
    )


def job_steps(db: str, job_id: str) -> str:
    """A job's steps as `dashboard.views.timeline` reads them, and its user and kind."""
    return (
        "SELECT time, state, attempt, latency_ms, reason, user_id, kind"
        f" FROM {db}.jobs_events WHERE job_id = '{job_id}' ORDER BY time, _offset"
    )
