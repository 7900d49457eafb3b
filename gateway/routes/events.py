"""`POST /v1/events`: one client event in, one CloudEvent on the ingest topic out."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request

from gateway.content_type import require_json
from gateway.errors import ApiError
from gateway.metrics import EVENTS_ACCEPTED
from gateway.producer import EventProducer
from schemas.api import Accepted, ErrorBody
from schemas.envelope import CloudEvent
from schemas.topics import INGEST

router = APIRouter(prefix="/v1", tags=["events"])

ERRORS: dict[int | str, dict[str, object]] = {
    413: {"model": ErrorBody, "description": "Body larger than the limit."},
    415: {"model": ErrorBody, "description": "Content-Type is not application/json."},
    422: {"model": ErrorBody, "description": "Not a valid event; `detail` lists each problem."},
    503: {"model": ErrorBody, "description": "The broker is down; retry after `Retry-After`."},
}


def producer(request: Request) -> EventProducer:
    return request.app.state.producer  # type: ignore[no-any-return]


@router.post(
    "/events",
    status_code=202,
    response_model=Accepted,
    responses=ERRORS,
    dependencies=[Depends(require_json)],
    summary="Accept one event; 202 once the broker has it durably (acks=all).",
)
async def post_event(
    event: CloudEvent, request: Request, events: EventProducer = Depends(producer)
) -> Accepted:
    if request.app.state.draining:
        raise ApiError(503, "shutting_down", "This gateway is shutting down; retry elsewhere.")
    topic = INGEST.physical(request.app.state.settings.namespace)
    accepted = await events.send(topic, event)
    EVENTS_ACCEPTED.labels(topic=INGEST.name).inc()
    return accepted
