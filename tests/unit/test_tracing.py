"""W3C trace context on produced records (gateway/tracing.py)."""

from __future__ import annotations

import re

import pytest

from gateway import tracing
from gateway.tracing import trace_headers

TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-01$")


def test_a_request_without_a_trace_starts_one() -> None:
    first = TRACEPARENT.match(trace_headers({}, None)["traceparent"])
    second = TRACEPARENT.match(trace_headers({}, None)["traceparent"])
    assert first and second
    assert first.group(1) != second.group(1)  # a new trace per request
    assert first.group(2) != second.group(2)


def test_a_request_in_a_trace_continues_it_with_a_new_span() -> None:
    incoming = "00-" + "4bf92f3577b34da6a3ce929d0e0e4736" + "-00f067aa0ba902b7-01"
    headers = trace_headers({"traceparent": incoming}, "key-1")
    match = TRACEPARENT.match(headers["traceparent"])
    assert match and match.group(1) == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert match.group(2) != "00f067aa0ba902b7"
    assert headers["idempotency-key"] == "key-1"


@pytest.mark.parametrize(
    "incoming",
    [
        "00-not-a-trace-01",
        "00-" + "0" * 32 + "-00f067aa0ba902b7-01",  # all-zero trace id: invalid
        "00-4bf92f3577b34da6a3ce929d0e0e4736-" + "0" * 16 + "-01",  # all-zero parent id
    ],
)
def test_an_invalid_traceparent_starts_a_new_trace(incoming: str) -> None:
    headers = trace_headers({"traceparent": incoming}, None)
    match = TRACEPARENT.match(headers["traceparent"])
    assert match and match.group(1) not in incoming
    assert "idempotency-key" not in headers


def test_ids_are_never_all_zeros(monkeypatch: pytest.MonkeyPatch) -> None:
    draws = iter([0, 0, 5])
    monkeypatch.setattr(tracing.random, "getrandbits", lambda bits: next(draws))
    assert tracing._random_id(64) == "0000000000000005"
