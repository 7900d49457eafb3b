"""Request content checks that run before the body is parsed."""

from __future__ import annotations

from fastapi import Request

from gateway.errors import ApiError


async def require_json(request: Request) -> None:
    """415 unless the request says its body is JSON."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != "application/json" and not ctype.endswith("+json"):
        raise ApiError(
            415, "unsupported_media_type", f"Content-Type must be application/json, got {ctype!r}."
        )
