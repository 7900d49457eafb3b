"""Every header name Tributary puts on a Kafka record or reads from an HTTP request.

CloudEvents attributes travel as `ce_<attribute>` headers (binary content mode); our
own record headers are `x-tributary-*`. Nothing outside `schemas/` spells one out.
"""

from __future__ import annotations

CE_PREFIX = "ce_"
CE_SPECVERSION = "ce_specversion"
CE_ID = "ce_id"
CE_SOURCE = "ce_source"
CE_TYPE = "ce_type"
CE_SUBJECT = "ce_subject"
CE_TIME = "ce_time"
CE_DATASCHEMA = "ce_dataschema"
CONTENT_TYPE = "content-type"

# W3C trace context of the request a record was produced for.
TRACEPARENT = "traceparent"
# The client's Idempotency-Key: an HTTP request header, copied onto the record it made.
IDEMPOTENCY_KEY = "idempotency-key"

# Every header of our own starts so.
OURS_PREFIX = "x-tributary-"

# A dead letter: why it failed, the error, and where the record was (`topic:partition:offset`).
REASON = "x-tributary-reason"
ERROR = "x-tributary-error"
ORIGIN = "x-tributary-origin"
DEAD_LETTER_HEADERS = (REASON, ERROR, ORIGIN)
# A record an operator sent back from the DLQ: `dlq:<partition>:<offset>`.
RETRIED_FROM = "x-tributary-retried-from"

# A record on the retry topic: when it is due (epoch ms) and the topic it then goes to.
DUE_MS = "x-tributary-due-ms"
TARGET = "x-tributary-target"

# HTTP: the user, when the gateway runs without authentication (development only).
USER = "x-tributary-user"
