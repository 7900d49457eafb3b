"""Job attempts: backoff with deterministic jitter, retries, dead letters."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from schemas.jobs import FailedAttempt, InferenceSpec, Job, JobKind
from streams.jobs.retries import Backoff, GiveUp, Retry, after_failure
from streams.jobs.retry_scheduler import wait_ms

JOB = Job(
    job_id="j",
    user_id="u",
    kind=JobKind.INFERENCE,
    accepted_ms=0,
    max_attempts=3,
    spec=InferenceSpec(model="minilm", inputs=["a"]),
)


@given(st.text(min_size=1, max_size=20), st.integers(1, 30))
def test_backoff_is_within_half_to_full_exponential_and_repeatable(job_id: str, n: int) -> None:
    backoff = Backoff(base_ms=2000, cap_ms=300_000)
    ceiling = min(300_000, 2000 * 2 ** (n - 1))
    delay = backoff.delay_ms(job_id, n)
    assert ceiling // 2 <= delay <= ceiling
    assert delay == backoff.delay_ms(job_id, n)


def test_transient_failure_is_retried_then_dead_lettered_after_the_last_attempt() -> None:
    backoff = Backoff(base_ms=2000)
    first = after_failure(JOB, "boom", permanent=False, now_ms=10_000, backoff=backoff)
    assert isinstance(first, Retry)
    assert first.job.attempt == 2 and 11_000 <= first.due_ms <= 12_000
    second = after_failure(first.job, "boom", False, 20_000, backoff)
    assert isinstance(second, Retry) and second.job.attempt == 3
    last = after_failure(second.job, "boom", False, 30_000, backoff)
    assert isinstance(last, GiveUp) and last.reason == "attempts_exhausted"
    assert [h.attempt for h in last.job.history] == [1, 2, 3]


def test_permanent_failure_skips_retries() -> None:
    step = after_failure(JOB, "image not found", permanent=True, now_ms=0, backoff=Backoff())
    assert isinstance(step, GiveUp) and step.reason == "permanent_error"
    assert step.job.history == [FailedAttempt(attempt=1, error="image not found", at_ms=0)]


def test_retry_scheduler_waits_until_due() -> None:
    assert wait_ms(None, 5) == 0
    assert wait_ms(100, 40) == 60
    assert wait_ms(100, 400) == 0
