"""The KRaft cluster id handed to `kafka-storage format -t`."""

from __future__ import annotations

import base64
import uuid

import pytest

from infra.local import kafka

# 0xF8: the first six bits are 62, which base64url writes as '-'.
DASH_FIRST = uuid.UUID(bytes=b"\xf8" + bytes(15))
PLAIN = uuid.UUID(bytes=b"\x01" + bytes(15))


def test_an_id_starting_with_a_dash_is_drawn_again(monkeypatch: pytest.MonkeyPatch) -> None:
    assert base64.urlsafe_b64encode(DASH_FIRST.bytes).decode().startswith("-")
    drawn = iter([DASH_FIRST, DASH_FIRST, PLAIN])
    monkeypatch.setattr(kafka.uuid, "uuid4", lambda: next(drawn))

    assert kafka.cluster_id() == base64.urlsafe_b64encode(PLAIN.bytes).decode().rstrip("=")


def test_ids_are_22_base64url_characters() -> None:
    alphabet = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    for _ in range(1000):
        cid = kafka.cluster_id()
        assert len(cid) == 22 and set(cid) <= alphabet and not cid.startswith("-")
