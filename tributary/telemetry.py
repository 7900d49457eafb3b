"""OpenTelemetry for every process, and the trace context on Kafka records and stream entries.

With `TRIBUTARY_OTLP_ENDPOINT` (e.g. http://127.0.0.1:4318, Jaeger's OTLP/HTTP port) each
process exports its spans there in batches; without it the API's no-op tracer is used and
`enabled` is False, so the hot paths skip tracing entirely (the gateway bench, on and off).
The context rides hop to hop in the W3C `traceparent` header of each record: gateway →
agent → projector and push → the WebSocket send; gateway → commands → executor → the
attempt (Docker or Triton) → `job.result` → executor → `jobs.events` → status.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from schemas.headers import TRACEPARENT
from tributary.settings import Settings

_PROPAGATOR = TraceContextTextMapPropagator()
_provider: object | None = None
enabled = False


def setup(service: str, settings: Settings) -> None:
    """Export this process's spans as `service`, if an endpoint is configured."""
    global enabled, _provider
    if not settings.otlp_endpoint or enabled:
        return
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    exporter = OTLPSpanExporter(
        endpoint=f"{settings.otlp_endpoint.rstrip('/')}/v1/traces", timeout=2
    )  # a collector that is down never holds a stopping process for long
    provider.add_span_processor(
        BatchSpanProcessor(exporter, schedule_delay_millis=500, export_timeout_millis=2000)
    )
    trace.set_tracer_provider(provider)
    _provider = provider
    enabled = True


def shutdown() -> None:
    """Send what is batched (at a process's stop)."""
    if _provider is not None:
        _provider.shutdown()  # type: ignore[attr-defined]


def tracer() -> trace.Tracer:
    return trace.get_tracer("tributary")


def parent_of(headers: Sequence[tuple[str, bytes]] | None) -> otel_context.Context | None:
    """The context a record's `traceparent` header carries, if any."""
    for name, value in headers or ():
        if name == TRACEPARENT and value:
            return _PROPAGATOR.extract({TRACEPARENT: value.decode(errors="replace")})
    return None


def traceparent(span: Span | None = None) -> bytes:
    """The `traceparent` of `span` (default: the current one), to put on a record."""
    carrier: dict[str, str] = {}
    ctx = trace.set_span_in_context(span) if span is not None else None
    _PROPAGATOR.inject(carrier, context=ctx)
    return carrier.get(TRACEPARENT, "").encode()


def with_traceparent(headers: list[tuple[str, bytes]], value: bytes) -> list[tuple[str, bytes]]:
    """`headers` with `traceparent` set to `value` (replacing one inherited)."""
    return [(k, v) for k, v in headers if k != TRACEPARENT] + [(TRACEPARENT, value)]


@contextmanager
def span(
    name: str,
    headers: Sequence[tuple[str, bytes]] | None = None,
    kind: SpanKind = SpanKind.INTERNAL,
    **attributes: str | int,
) -> Iterator[Span | None]:
    """A span, child of the record whose `headers` carry a trace (None when tracing is off
    or the record carries none: nothing to continue)."""
    if not enabled:
        yield None
        return
    parent = parent_of(headers)
    if parent is None:
        yield None
        return
    with tracer().start_as_current_span(
        name, context=parent, kind=kind, attributes=attributes
    ) as current:
        yield current
