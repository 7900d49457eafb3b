"""The one error type the executors' runners raise."""

from __future__ import annotations


class RunnerError(Exception):
    """A failed side effect. `permanent` ones (bad input) are not retried."""

    def __init__(self, message: str, permanent: bool) -> None:
        super().__init__(message)
        self.permanent = permanent
