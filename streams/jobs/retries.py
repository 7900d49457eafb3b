"""Job attempts: what follows a failure, and when the next attempt is due (pure).

Exponential backoff with "equal jitter": attempt n waits between half and all of
`base * 2**(n-1)` (capped). The jitter is drawn from a hash of (job id, attempt), not a
random generator, so a replay of the same topic schedules the same times.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from schemas.jobs import FailedAttempt, Job


@dataclass(frozen=True)
class Backoff:
    base_ms: int = 2000
    cap_ms: int = 5 * 60_000

    def delay_ms(self, job_id: str, attempt: int) -> int:
        """Wait before attempt `attempt + 1`, after attempt `attempt` (1-based) failed."""
        if attempt < 1:
            raise ValueError("attempt is 1-based")
        ceiling = min(self.cap_ms, self.base_ms * 2 ** (attempt - 1))
        digest = hashlib.blake2b(f"{job_id}:{attempt}".encode(), digest_size=8).digest()
        fraction = int.from_bytes(digest, "big") / 2**64
        return ceiling // 2 + int(fraction * (ceiling - ceiling // 2))


@dataclass(frozen=True)
class Retry:
    job: Job  # the next attempt
    due_ms: int


@dataclass(frozen=True)
class GiveUp:
    """No further attempt: the job goes to the DLQ with this reason."""

    job: Job
    reason: str


def after_failure(
    job: Job, error: str, permanent: bool, now_ms: int, backoff: Backoff
) -> Retry | GiveUp:
    """A failed attempt becomes a later attempt, or a dead letter (last attempt, or permanent)."""
    history = [*job.history, FailedAttempt(attempt=job.attempt, error=error, at_ms=now_ms)]
    if permanent:
        return GiveUp(job.model_copy(update={"history": history}), "permanent_error")
    if job.attempt >= job.max_attempts:
        return GiveUp(job.model_copy(update={"history": history}), "attempts_exhausted")
    due = now_ms + backoff.delay_ms(job.job_id, job.attempt)
    return Retry(job.model_copy(update={"attempt": job.attempt + 1, "history": history}), due)
