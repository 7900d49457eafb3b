"""Inputs too large to pass on: dead-lettered without their value, the partition goes on."""

from __future__ import annotations

from dataclasses import replace

from aiokafka.record.default_records import DefaultRecordBatchBuilder

from schemas.topics import MAX_RECORD_BYTES
from streams.runtime.outputs import Output, Record, dead_lettered

# An input this large cannot be passed on: what a processor writes adds headers (the
# sequence, reasons) to a record that already fills a batch, and the producer would refuse
# it on every retry of the partition. (The gateway's records are far smaller.)
MAX_INPUT_BYTES = MAX_RECORD_BYTES - 64 * 1024


def too_large(record: Record, topic: str) -> Output | None:
    """A dead letter for `record` if it is too large to pass on, else None. The letter
    keeps the key and headers but not the value, which is what does not fit; the record
    itself stays at its origin (`x-tributary-origin`)."""
    size = DefaultRecordBatchBuilder.estimate_size_in_bytes(
        record.key, record.value, list(record.headers or ())
    )
    if size <= MAX_INPUT_BYTES:
        return None
    letter = dead_lettered(
        record,
        topic,
        reason="record_too_large",
        error=f"{size} bytes; at most {MAX_INPUT_BYTES} can be passed on (value not copied)",
    )
    return replace(letter, value=None)
