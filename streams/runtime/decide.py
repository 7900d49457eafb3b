"""One record through a processor, as the loop runs it: an input too large to pass on and
a processor that fails are dead-lettered (the partition goes on), and with tracing on the
decision is a span continuing the record's trace, whose `traceparent` its outputs and
effects carry on."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import structlog

from streams.runtime import state
from streams.runtime.outputs import Effect, Output, Record, dead_lettered
from streams.runtime.oversize import too_large
from streams.runtime.processor import Processor
from tributary import telemetry

log = structlog.get_logger(__name__)


def traced(
    processor: Processor, record: Record, tables: state.Tables, partition: int
) -> Sequence[Output | Effect]:
    """`one`, in a span when tracing is on; the outputs and effects carry its traceparent."""
    if not telemetry.enabled:
        return one(processor, record, tables)
    name = f"{processor.name} decide"
    with telemetry.span(name, record.headers, partition=partition, offset=record.offset) as on:
        outs = one(processor, record, tables)
    if on is None:
        return outs
    tag = telemetry.traceparent(on)
    return [
        replace(o, traceparent=tag)
        if isinstance(o, Effect)
        else replace(o, headers=telemetry.with_traceparent(o.headers, tag))
        for o in outs
    ]


def one(processor: Processor, record: Record, tables: state.Tables) -> Sequence[Output | Effect]:
    """The processor's outputs for `record`, or a dead letter saying why there are none."""
    if (letter := too_large(record, processor.dlq)) is not None:
        tables.count("dead_lettered")
        return [letter]
    try:
        return processor.process(record, tables)
    except Exception as exc:  # a bug of ours must not stop the partition or lose the record
        log.exception("processing failed; dead-lettered", loop=processor.name)
        tables.count("dead_lettered")
        return [dead_lettered(record, processor.dlq, reason="processing_error", error=repr(exc))]
