"""A Python client of `WS /v1/ws`: a user's events, in seq order, across reconnects.

    client = PushClient("http://localhost:8080", api_key=key, since=0)
    async for event in client.events():
        print(event.seq, event.type, event.data)

It sends the credential as a header, remembers the last seq it handed out, and when the
connection drops (network, a gateway draining with 1012, a slow-client 4008, Redis down
with 1011) it reconnects with `since=<that seq>` after a backoff (websockets' own: a random
first delay up to `first_delay_s`, which spreads the clients of a draining gateway, then
growing to `max_delay_s`), so the caller sees each seq once, in order.
Each resume's verdict is kept in `resumes` (`recovered: false` says some events are gone).
A refusal (1008: bad credential or parameters) raises `PushRefused`: retrying cannot help.
Depends on `schemas` and `websockets` only.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Generator
from urllib.parse import urlencode

import orjson
import websockets
from websockets.asyncio.client import connect
from websockets.client import backoff

from schemas.push import CLOSE_POLICY, EventMessage, ResumeMessage


class PushRefused(Exception):
    """The gateway refused the socket (close 1008): the reason says which parameter."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class PushClient:
    def __init__(
        self,
        gateway_url: str,
        *,
        api_key: str | None = None,
        token: str | None = None,
        subject: str | None = None,
        since: int | None = None,
        first_delay_s: float = 1.0,
        max_delay_s: float = 30.0,
        open_timeout_s: float = 10.0,
    ) -> None:
        """`since`: the last seq already seen (None: live events only, from now)."""
        self.url = gateway_url.replace("http://", "ws://").replace("https://", "wss://")
        self.headers = {"X-API-Key": api_key} if api_key else {}
        if token:
            self.headers["Authorization"] = f"Bearer {token}"
        self.subject = subject  # only where the gateway runs without auth (local dev)
        self.since = since
        self.first_delay_s = first_delay_s
        self.max_delay_s = max_delay_s
        self.open_timeout_s = open_timeout_s
        self.resumes: list[ResumeMessage] = []
        self.connections = 0

    def _address(self) -> str:
        params: dict[str, str | int] = {}
        if self.since is not None:
            params["since"] = self.since
        if self.subject:
            params["subject"] = self.subject
        return f"{self.url}/v1/ws" + (f"?{urlencode(params)}" if params else "")

    def _delays(self) -> Generator[float]:
        return backoff(self.first_delay_s, min(1.0, self.max_delay_s), self.max_delay_s)

    async def events(self) -> AsyncGenerator[EventMessage]:
        """The user's events, each seq once and in order, reconnecting for ever."""
        delays: Generator[float] | None = None
        while True:
            try:
                async with connect(
                    self._address(),
                    additional_headers=self.headers,
                    open_timeout=self.open_timeout_s,
                    max_size=None,
                ) as ws:
                    self.connections += 1
                    async for raw in ws:
                        message = orjson.loads(raw)
                        if message.get("control") == "resume":
                            resume = ResumeMessage.model_validate(message)
                            self.resumes.append(resume)
                            delays = None  # connected and answered: start backoff afresh
                            if self.since is None:  # live only: resume from here next time
                                self.since = resume.last if isinstance(resume.last, int) else 0
                            continue
                        event = EventMessage.model_validate(message)
                        if self.since is not None and event.seq <= self.since:
                            continue
                        self.since = event.seq
                        yield event
            except websockets.ConnectionClosed as exc:
                if exc.rcvd is not None and exc.rcvd.code == CLOSE_POLICY:
                    raise PushRefused(exc.rcvd.reason) from exc
            except (OSError, TimeoutError, websockets.InvalidHandshake):
                pass
            if delays is None:
                delays = self._delays()
            await asyncio.sleep(next(delays))
