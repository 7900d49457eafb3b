"""Side-by-side editions: a type whose version was bumped is written in every version still
published, so subscribers of the older one keep working until its `until` date.

Each copy has the same CloudEvents id (it is the same occurrence) and names its own version
in `dataschema`. A subscriber reads the versions it knows and skips the others; Tributary's
own readers read only the current one (`contracts.is_current`).
"""

from __future__ import annotations

from datetime import UTC, date, datetime

from schemas import contracts
from schemas.envelope import CloudEvent


def editions(event: CloudEvent, today: date | None = None) -> list[CloudEvent]:
    """`event` (current version), then a copy per older edition still produced `today`."""
    if not contracts.known(event.type):
        return [event]
    contract = contracts.contract(event.type)
    today = today or datetime.now(UTC).date()
    out = [event]
    for edition in contract.older:
        if today > edition.until:
            continue
        data = edition.model.model_validate(edition.downgrade(dict(event.data))).model_dump(
            mode="json", exclude_none=True
        )
        out.append(
            event.model_copy(
                update={
                    "data": data,
                    "dataschema": contracts.dataschema(event.type, edition.version),
                }
            )
        )
    return out
