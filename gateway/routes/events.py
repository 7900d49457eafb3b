"""`POST /v1/events` and `/v1/events/batch`: client events in, CloudEvents on the ingest topic.

Order of checks: content type (415) → credential (401) → body (422) → owner of the
subject (403) → rate limit (429) → Idempotency-Key replay → produce, 202 after the ack.
"""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from pydantic import ValidationError
from starlette.datastructures import State

from gateway.auth import Principal, authenticate
from gateway.content_type import require_json
from gateway.errors import ApiError
from gateway.metrics import EVENTS_ACCEPTED
from gateway.routes.common import ERRORS, admit, refuse_when_draining, with_idempotency
from gateway.tracing import trace_headers
from schemas import contracts
from schemas import headers as h
from schemas.api import Accepted, BatchIn, BatchResult, EventIn, ItemResult
from schemas.envelope import CloudEvent, new_event_id, utcnow
from schemas.topics import INGEST

router = APIRouter(prefix="/v1", tags=["events"])

_INGEST_ACCEPTED = EVENTS_ACCEPTED.labels(topic=INGEST.name)
_ID_NAMESPACE = uuid.UUID("0b7a4a0e-3f7e-4d8e-9a55-6f3c1b2d9e10")


def to_event(
    item: EventIn, principal: Principal | None, idem: str | None, index: int = 0
) -> CloudEvent:
    """The stored event: the subject from the credential, an id derived from the idempotency key."""
    if principal is not None:
        if item.subject is not None and item.subject != principal.user_id:
            raise ApiError(403, "subject_mismatch", "`subject` must be the authenticated user.")
        subject = principal.user_id
    elif item.subject is None:
        raise ApiError(
            422,
            "validation_failed",
            "subject: Field required (the user id)",
            detail=[{"loc": ["body", "subject"], "msg": "Field required", "type": "missing"}],
        )
    else:
        subject = item.subject
    event_id = item.id or (
        str(uuid.uuid5(_ID_NAMESPACE, f"{subject}:{idem}:{index}")) if idem else new_event_id()
    )
    return CloudEvent(
        id=event_id,
        source=item.source,
        type=item.type,
        time=item.time or utcnow(),
        subject=subject,
        # The client's type is the client's: the schema is named, not looked up by type.
        dataschema=contracts.CLIENT_EVENT_SCHEMA,
        data=item.data,
    )


async def produce_event(state: State, event: CloudEvent, headers: dict[str, str]) -> Accepted:
    """`event` on the ingest topic, acknowledged by the broker (else 503)."""
    accepted = await state.producer.send(INGEST.physical(state.settings.namespace), event, headers)
    _INGEST_ACCEPTED.inc()
    return accepted  # type: ignore[no-any-return]


@router.post(
    "/events",
    status_code=202,
    response_model=Accepted,
    responses=ERRORS,
    dependencies=[Depends(require_json), Depends(refuse_when_draining)],
    summary="Accept one event; 202 once the broker has it durably (acks=all).",
)
async def post_event(
    item: EventIn,
    request: Request,
    response: Response,
    principal: Principal | None = Depends(authenticate),
) -> Response:
    state = request.app.state
    idem = request.headers.get(h.IDEMPOTENCY_KEY)
    event = to_event(item, principal, idem)
    await admit(request, response, event.subject, 1)

    async def produce() -> tuple[int, dict[str, Any]]:
        accepted = await produce_event(state, event, trace_headers(request.headers, idem))
        return 202, accepted.model_dump()

    answer = await with_idempotency(request, "events", event.subject, produce)
    answer.headers.update(response.headers)
    return answer


@router.post(
    "/events/batch",
    response_model=BatchResult,
    responses=ERRORS,
    dependencies=[Depends(require_json), Depends(refuse_when_draining)],
    summary="Accept up to 1,000 events; each gets its own result (202 or its 4xx).",
)
async def post_batch(
    batch: BatchIn,
    request: Request,
    response: Response,
    principal: Principal | None = Depends(authenticate),
) -> Response:
    state = request.app.state
    if len(batch.events) > state.settings.max_batch_events:
        raise ApiError(
            422, "batch_too_large", f"At most {state.settings.max_batch_events} events per batch."
        )
    idem = request.headers.get(h.IDEMPOTENCY_KEY)
    results: list[ItemResult] = []
    events: list[tuple[int, CloudEvent]] = []
    for index, raw in enumerate(batch.events):
        try:
            events.append((index, to_event(EventIn.model_validate(raw), principal, idem, index)))
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "event"
            results.append(
                ItemResult(
                    index=index,
                    status=422,
                    error="validation_failed",
                    message=f"{where}: {first['msg']}",
                )
            )
        except ApiError as exc:
            results.append(
                ItemResult(index=index, status=exc.status, error=exc.error, message=exc.message)
            )
    user = principal.user_id if principal else (events[0][1].subject if events else "anonymous")
    if events:
        await admit(request, response, user, len(events))
    topic = INGEST.physical(state.settings.namespace)

    async def produce() -> tuple[int, dict[str, Any]]:
        extra = trace_headers(request.headers, idem)
        accepted = await state.producer.send_many(topic, [e for _, e in events], extra)
        for (index, _), ok in zip(events, accepted, strict=True):
            results.append(
                ItemResult(
                    index=index, status=202, id=ok.id, partition=ok.partition, offset=ok.offset
                )
            )
        EVENTS_ACCEPTED.labels(topic=INGEST.name).inc(len(events))
        results.sort(key=lambda r: r.index)
        body = BatchResult(
            accepted=len(events), rejected=len(results) - len(events), results=results
        )
        return 200, body.model_dump(exclude_none=True)

    answer = await with_idempotency(request, "events_batch", user, produce)
    answer.headers.update(response.headers)
    return answer
