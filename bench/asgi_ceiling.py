"""The ceiling of any Python HTTP handler here: uvicorn (as the gateway runs it) with an ASGI
app that reads the body and answers 202, doing nothing else (no auth, no limit, no Kafka).

`bench.gateway` loads it with the same wrk command as the gateway, so the table shows how
much of the gap to the raw producer is the HTTP server itself.
"""

from __future__ import annotations

from typing import Any

ACCEPTED = b'{"status":"accepted"}'


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    await send(
        {
            "type": "http.response.start",
            "status": 202,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": ACCEPTED})
