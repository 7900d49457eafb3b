"""The HTTP edge limits (tributary/http_edge.py) on a real socket, with a real uvicorn."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import orjson
import pytest
import websockets
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from infra.local.process import free_port
from tributary.http_edge import EdgeLimits, EdgeProtocol, listen

LIMITS = EdgeLimits(max_url_bytes=512, max_header_bytes=2048, max_headers=20, request_timeout_s=1)


class Limited(EdgeProtocol):
    limits = LIMITS


async def echo(request: Request) -> JSONResponse:
    return JSONResponse({"path": request.url.path, "body": len(await request.body())})


async def ws_echo(ws: WebSocket) -> None:
    await ws.accept()
    await ws.send_text(await ws.receive_text())
    await ws.close()


@pytest.fixture
async def port() -> AsyncIterator[int]:
    routes = [Route("/x", echo, methods=["GET", "POST"]), WebSocketRoute("/ws", ws_echo)]
    app = Starlette(routes=routes)
    chosen = free_port()
    server, serving = await listen(app, "127.0.0.1", chosen, Limited)
    yield chosen
    server.should_exit = True
    await serving


async def exchange(port: int, request: bytes, pause_s: float = 0) -> tuple[int, dict, float]:
    """Send `request` (after `pause_s`), read the answer: (status, JSON body, seconds)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    started = time.monotonic()
    writer.write(request)
    if pause_s:
        await asyncio.sleep(pause_s)
    raw = await asyncio.wait_for(reader.read(65536), 5)
    writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    status = int(head.split(b" ")[1])
    return status, orjson.loads(body) if body else {}, time.monotonic() - started


async def test_a_request_within_the_limits_is_served(port: int) -> None:
    status, body, _ = await exchange(port, b"GET /x HTTP/1.1\r\nHost: a\r\nX-A: b\r\n\r\n")
    assert (status, body) == (200, {"path": "/x", "body": 0})
    # A body bigger than the head limit, in the same packets as the head, is no head.
    request = b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 65536\r\n\r\n" + b"b" * 65536
    status, body, _ = await exchange(port, request)
    assert (status, body) == (200, {"path": "/x", "body": 65536})


async def test_oversized_headers_are_431(port: int) -> None:
    big = b"X-Big: " + b"a" * 4096 + b"\r\n"
    status, body, _ = await exchange(port, b"GET /x HTTP/1.1\r\nHost: a\r\n" + big + b"\r\n")
    assert (status, body["error"]) == (431, "headers_too_large")


async def test_a_header_line_that_never_ends_is_431_while_it_grows(port: int) -> None:
    # httptools keeps an unfinished header line in memory: the bound must hold before it ends.
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /x HTTP/1.1\r\nHost: a\r\nX-Endless: " + b"a" * 6000)  # no line end
    raw = await asyncio.wait_for(reader.read(65536), 5)
    writer.close()
    assert raw.startswith(b"HTTP/1.1 431 ")
    assert b'"headers_too_large"' in raw


async def test_too_many_headers_are_431(port: int) -> None:
    many = b"".join(b"X-H%d: v\r\n" % i for i in range(30))
    status, body, _ = await exchange(port, b"GET /x HTTP/1.1\r\nHost: a\r\n" + many + b"\r\n")
    assert (status, body["error"]) == (431, "too_many_headers")


async def test_a_long_url_is_414(port: int) -> None:
    url = b"/x?" + b"q" * 1024
    status, body, _ = await exchange(port, b"GET " + url + b" HTTP/1.1\r\nHost: a\r\n\r\n")
    assert (status, body["error"]) == (414, "uri_too_long")


async def test_headers_that_never_finish_are_408_at_the_deadline(port: int) -> None:
    status, body, seconds = await exchange(port, b"GET /x HTTP/1.1\r\nHost: a\r\n")
    assert (status, body["error"]) == (408, "request_timeout")
    assert LIMITS.request_timeout_s <= seconds < LIMITS.request_timeout_s + 1


async def test_a_silent_connection_is_408_at_the_deadline(port: int) -> None:
    status, _, seconds = await exchange(port, b"")
    assert status == 408 and seconds < LIMITS.request_timeout_s + 1


async def test_a_body_that_stops_coming_closes_the_connection(port: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\nabc")
    started = time.monotonic()
    assert await asyncio.wait_for(reader.read(), 5) == b""  # closed, no answer half-made
    assert time.monotonic() - started < LIMITS.request_timeout_s + 1
    writer.close()


async def test_a_websocket_outlives_the_request_deadline(port: int) -> None:
    async with websockets.connect(f"ws://127.0.0.1:{port}/ws") as ws:
        await asyncio.sleep(LIMITS.request_timeout_s + 0.5)
        await ws.send("still here")
        assert await ws.recv() == "still here"
