"""The published schemas: what subscribers validate our records' `data` against.

Open without a credential, like a schema registry: they describe the topics, not a user's
data. Every record names its schema in `dataschema`, `urn:tributary:schema:<type>:<version>`;
this is `GET /v1/schemas/<type>/<version>`.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Path, Response

from gateway.errors import ApiError
from gateway.responses import json_response
from schemas import contracts, publishing
from schemas.api import ErrorBody
from schemas.topics import REGISTRY

router = APIRouter(prefix="/v1/schemas", tags=["schemas"])

CACHE = {"Cache-Control": "public, max-age=300"}


def _topics_of(event_type: str) -> list[str]:
    return [spec.name for spec in REGISTRY if event_type in spec.carries]


@router.get("", summary="Every published type and version, with its dataschema and topics.")
async def list_schemas() -> Response:
    listed: list[dict[str, Any]] = []
    for contract in contracts.CONTRACTS:
        until = {e.version: e.until.isoformat() for e in contract.older}
        for version in contract.models():
            listed.append(
                {
                    "type": contract.type,
                    "version": version,
                    "current": version == contract.version,
                    "produced_until": until.get(version),
                    "dataschema": contracts.dataschema(contract.type, version),
                    "url": f"/v1/schemas/{contract.type}/{version}",
                    "topics": _topics_of(contract.type),
                    "description": contract.description,
                }
            )
    return json_response({"schemas": listed}, headers=CACHE)


@router.get(
    "/{event_type}/{version}",
    summary="The JSON Schema (2020-12) of one version of a type's `data`.",
    responses={404: {"model": ErrorBody, "description": "No such type or version."}},
)
async def get_schema(
    event_type: str = Path(max_length=128), version: int = Path(ge=1, le=1000)
) -> Response:
    if not contracts.known(event_type):
        raise ApiError(404, "unknown_type", f"No type {event_type!r}; GET /v1/schemas lists them.")
    contract = contracts.contract(event_type)
    if version not in contract.models():
        raise ApiError(
            404,
            "unknown_version",
            f"Type {event_type!r} has versions {sorted(contract.models())}, not {version}.",
        )
    schema = publishing.schema_of(contract, version)
    response = json_response(schema, headers=CACHE)
    response.headers["content-type"] = "application/schema+json"
    return response
