"""Request content checks that run before the body is parsed."""

from __future__ import annotations

from fastapi import Request

from gateway.errors import ApiError


def media_type(content_type: str) -> str:
    """`application/json` of `Application/JSON; charset=utf-8`."""
    return content_type.split(";")[0].strip().lower()


def is_json(content_type: str) -> bool:
    ctype = media_type(content_type)
    return ctype == "application/json" or ctype.endswith("+json")


async def require_json(request: Request) -> None:
    """415 unless the request says its body is JSON."""
    if not is_json(request.headers.get("content-type", "")):
        ctype = media_type(request.headers.get("content-type", ""))
        raise ApiError(
            415, "unsupported_media_type", f"Content-Type must be application/json, got {ctype!r}."
        )
