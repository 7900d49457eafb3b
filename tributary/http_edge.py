"""Limits at the HTTP edge, enforced inside the parser, before any application code runs.

uvicorn's httptools protocol buffers a request's URL and headers without a bound and
waits for a silent client forever. `EdgeProtocol` (what the gateway and the projector
serve with) counts while it parses: past `http_max_url_bytes` it answers 414, past
`http_max_header_bytes` or `http_max_headers` 431, and a request not received in full
within `http_request_timeout_s` of its first byte (or of the connection, for a client
that sends nothing) gets 408 and the connection closes. WebSocket upgrades leave the
timer behind. Every refusal is `{"error", "message"}` JSON, like the API's own.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

import orjson
import uvicorn
from starlette.types import ASGIApp
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from tributary.settings import Settings, get_settings

_REASONS = {408: b"Request Timeout", 414: b"URI Too Long", 431: b"Request Header Fields Too Large"}


@dataclass(frozen=True)
class EdgeLimits:
    max_url_bytes: int
    max_header_bytes: int
    max_headers: int
    request_timeout_s: float

    @classmethod
    def of(cls, settings: Settings) -> EdgeLimits:
        return cls(
            settings.http_max_url_bytes,
            settings.http_max_header_bytes,
            settings.http_max_headers,
            settings.http_request_timeout_s,
        )


class _Refused(Exception):
    def __init__(self, status: int, error: str, message: str) -> None:
        super().__init__(message)
        self.status, self.error, self.message = status, error, message


class EdgeProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with the limits of `limits` (default: the settings')."""

    limits: ClassVar[EdgeLimits | None] = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._limits = self.limits or EdgeLimits.of(get_settings())
        self._url_bytes = self._header_bytes = self._header_count = 0
        # Bytes of the request head so far: httptools hands a header over only once its
        # line ends, and keeps an unfinished one in memory however long it grows.
        self._head_bytes = 0
        self._head_done = False
        limits = self._limits
        self._max_head_bytes = (
            limits.max_url_bytes + limits.max_header_bytes + 4 * limits.max_headers + 1024
        )
        self._refused: _Refused | None = None
        self._deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if not self._head_done:
            self._head_bytes += len(data)
        super().data_received(data)
        too_long = not self._head_done and self._head_bytes > self._max_head_bytes
        if too_long and not self.transport.is_closing():
            self._answer(
                _Refused(
                    431,
                    "headers_too_large",
                    f"The request head is over {self._max_head_bytes} bytes.",
                )
            )

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._url_bytes = self._header_bytes = self._header_count = 0
        self._arm()

    def on_url(self, url: bytes) -> None:
        self._url_bytes += len(url)
        if self._url_bytes > self._limits.max_url_bytes:
            raise self._refuse(
                414, "uri_too_long", f"The URL is over {self._limits.max_url_bytes} bytes."
            )
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_count += 1
        self._header_bytes += len(name) + len(value)
        if self._header_count > self._limits.max_headers:
            raise self._refuse(
                431, "too_many_headers", f"More than {self._limits.max_headers} headers."
            )
        if self._header_bytes > self._limits.max_header_bytes:
            raise self._refuse(
                431,
                "headers_too_large",
                f"The headers are over {self._limits.max_header_bytes} bytes in all.",
            )
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._head_done = True
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._disarm()
        self._head_bytes, self._head_done = 0, False
        super().on_message_complete()

    def handle_websocket_upgrade(self) -> None:
        self._disarm()
        super().handle_websocket_upgrade()

    def send_400_response(self, msg: str) -> None:
        """uvicorn's answer to a parser error; ours where a limit raised it."""
        refused, self._refused = self._refused, None
        if refused is None:
            super().send_400_response(msg)
        else:
            self._answer(refused)

    def _refuse(self, status: int, error: str, message: str) -> _Refused:
        # Raised inside a parser callback: httptools turns it into the parser error
        # uvicorn answers with `send_400_response`, which sends this instead.
        self._refused = _Refused(status, error, message)
        return self._refused

    def _answer(self, refused: _Refused) -> None:
        body = orjson.dumps({"error": refused.error, "message": refused.message})
        head = b"HTTP/1.1 %d %s\r\n" % (refused.status, _REASONS[refused.status])
        self.transport.write(
            head
            + b"content-type: application/json\r\ncontent-length: %d\r\n" % len(body)
            + b"connection: close\r\n\r\n"
            + body
        )
        self.transport.close()

    def _arm(self) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(self._limits.request_timeout_s, self._timed_out)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _timed_out(self) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        if self.cycle is None or self.cycle.response_complete:
            # Nothing handed to the application for this request yet: answer for it.
            self._answer(
                _Refused(
                    408,
                    "request_timeout",
                    f"The request did not arrive within {self._limits.request_timeout_s} s.",
                )
            )
        else:
            # The application has the headers and waits for the body: it sees a disconnect.
            self.transport.close()


class _InProcess(uvicorn.Server):
    """uvicorn inside a process's own loop: the process owns SIGTERM and SIGINT."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def listen(
    app: ASGIApp, host: str, port: int, protocol: type[EdgeProtocol] = EdgeProtocol
) -> tuple[uvicorn.Server, asyncio.Task[None]]:
    """Serve `app` on the running loop with the edge limits; return once it listens.
    Stop it with `server.should_exit = True` and await the task."""
    server = _InProcess(
        uvicorn.Config(
            app,
            host=host,
            port=port,
            http=protocol,
            lifespan="off",
            access_log=False,  # probes and queries would bury the process's own lines
            log_config=None,
            server_header=False,
            timeout_graceful_shutdown=5,
        )
    )
    serving = asyncio.create_task(server.serve(), name=f"http-{port}")
    while not server.started:
        if serving.done():
            serving.result()  # uvicorn exits (SystemExit) when it cannot bind
            raise RuntimeError(f"HTTP server gave up before listening on {host}:{port}")
        await asyncio.sleep(0.02)
    return server, serving
