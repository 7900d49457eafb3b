"""Errors the gateway answers with, mapped once to HTTP status codes and `ErrorBody`."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from gateway.responses import json_response
from schemas.api import ErrorBody


class ApiError(Exception):
    """An answer other than success: status, machine-readable code, readable message."""

    def __init__(
        self,
        status: int,
        error: str,
        message: str,
        *,
        retry_after_ms: int | None = None,
        headers: dict[str, str] | None = None,
        detail: list[dict[str, Any]] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.error = error
        self.message = message
        self.retry_after_ms = retry_after_ms
        self.headers = headers or {}
        self.detail = detail


class DependencyUnavailable(ApiError):
    """503: a dependency (the broker, Redis) is down; the client should retry."""

    def __init__(self, dependency: str, message: str, retry_after_s: int = 1) -> None:
        super().__init__(
            503,
            f"{dependency}_unavailable",
            message,
            retry_after_ms=retry_after_s * 1000,
            headers={"Retry-After": str(retry_after_s)},
        )


def _body(error: str, message: str, **extra: Any) -> dict[str, Any]:
    return ErrorBody(error=error, message=message, **extra).model_dump(exclude_none=True)


def body_of(exc: ApiError) -> dict[str, Any]:
    """The `ErrorBody` of `exc`, as sent."""
    return _body(exc.error, exc.message, retry_after_ms=exc.retry_after_ms, detail=exc.detail)


def install(app: FastAPI) -> None:
    """Register the handlers that turn every error into an `ErrorBody`."""

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> Response:
        return json_response(body_of(exc), status=exc.status, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> Response:
        detail = [
            {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
            for e in exc.errors()
        ]
        summary = "; ".join(
            f"{'.'.join(str(p) for p in d['loc'][1:]) or 'body'}: {d['msg']}" for d in detail
        )
        return json_response(
            _body("validation_failed", summary or "invalid request", detail=detail),
            status=422,
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> Response:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return json_response(
            _body(code, str(exc.detail)), status=exc.status_code, headers=exc.headers
        )
