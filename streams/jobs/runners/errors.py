"""The one error type the executors' runners raise."""

from __future__ import annotations

from tributary.breakers import Breakers, Excluded
from tributary.settings import Settings


class RunnerError(Exception):
    """A failed side effect. `permanent` ones (bad input) are not retried; `unreachable`
    ones (the dependency is down) do not spend the job's attempt: it waits for the
    dependency, through its circuit breaker."""

    def __init__(self, message: str, permanent: bool, unreachable: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent
        self.unreachable = unreachable


def job_breakers(settings: Settings) -> Breakers:
    """The executors' breakers (Docker, Triton). A permanent error (a bad image name, a
    model that does not exist) is the job's fault, not the dependency's: it does not count."""
    permanent: Excluded = (RunnerError, lambda exc: exc.permanent)
    return Breakers(settings.breaker_failures, settings.breaker_open_s, [permanent])
