"""Ask the projector for a user's pushed events Redis no longer holds (`GET /history/events`).

The gateway calls it with the admin credential (`TRIBUTARY_ADMIN_KEY`, or the local key
file: tributary/admin.py). Any failure (projector down, no credential, a timeout) is None:
the resume then says `recovered: false` rather than wait or guess.
"""

from __future__ import annotations

import httpx
import orjson
import structlog

from tributary import admin
from tributary.settings import Settings

log = structlog.get_logger(__name__)


async def fetch(
    settings: Settings, user: str, after: int, before: int | None
) -> list[tuple[int, bytes]] | None:
    """(seq, message) of the user's events after `after` and before `before`, or None."""
    if settings.push_fill_max_events == 0:
        return None
    params: dict[str, str | int] = {
        "user": user,
        "after": after,
        "limit": settings.push_fill_max_events,
    }
    if before is not None:
        params["before"] = before
    try:
        async with httpx.AsyncClient(timeout=settings.push_fill_timeout_s) as client:
            response = await client.get(
                f"{settings.projector_url}/history/events",
                params=params,
                headers=admin.client_headers(settings),
            )
        response.raise_for_status()
        messages = orjson.loads(response.content)["messages"]
        return [(int(m["seq"]), orjson.dumps(m)) for m in messages]
    except (httpx.HTTPError, orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        log.warning("push history unavailable", user=user, error=str(exc))
        return None
