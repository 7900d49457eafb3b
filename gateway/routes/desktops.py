"""Desktops: a container's screen, watched and driven from a browser through any gateway.

- `WS /v1/containers/{id}/display`: the VNC protocol (RFB), relayed byte for byte between
  the browser (binary WebSocket) and the desktop's VNC server. The relay finds the desktop's
  address in its status hash (written from `container.display.ready`), so any gateway
  serves any desktop. The owner reaches the server that takes input (5900); a share-token
  holder the view-only one (5901), so a viewer's keys and clicks go nowhere.
- `POST /v1/containers/{id}/share`: the owner mints a view-only link (a short-lived JWT,
  HS256, naming the container and the scope `view`).
- `GET /v1/containers/{id}/view`: the viewer page: noVNC (npm `@novnc/novnc`, served from
  `/static/novnc/`, its licence at `/static/novnc/LICENSE.txt`) on the relay, and the
  container's room (`WS /v1/ws?channel=container&id=...`) beside the screen.

Browsers cannot set headers on a WebSocket, so the page and its sockets carry the
credential in the query (`api_key` or `token` for the owner, `share` for a viewer).
Per viewer: at most `desktop_viewer_bytes_per_s` towards the browser, closed after
`desktop_idle_s` without a byte either way, and closed with the reason when the container
stops. Each session ends as a `desktop.session` event (who, how long, bytes each way).
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import secrets
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import jwt
import structlog
from fastapi import APIRouter, Depends, Request, WebSocket
from fastapi import Path as PathParam
from fastapi.responses import HTMLResponse
from pydantic import BaseModel
from redis.exceptions import RedisError
from starlette.websockets import WebSocketDisconnect

from gateway.errors import ApiError, DependencyUnavailable
from gateway.routes.common import ERRORS
from gateway.routes.jobs import ID_PATTERN, caller, read_hash
from schemas import keys
from schemas.envelope import CloudEvent
from schemas.jobs import DESKTOP_SESSION, VNC_PORT, VNC_VIEW_PORT, DesktopSession
from schemas.status import ENDED, ContainerStatusHash
from schemas.topics import DESKTOP_SESSIONS
from tributary.settings import Settings

log = structlog.get_logger(__name__)
router = APIRouter(prefix="/v1", tags=["desktops"])
SOURCE = "tributary/gateway"
NOVNC = Path(__file__).resolve().parents[1] / "static" / "node_modules" / "@novnc" / "novnc"
SCOPE = "view"
CHUNK = 64 * 1024

# WebSocket close codes: 4000 + what HTTP would have said, and one for "it stopped".
CLOSE_REFUSED = 4403
CLOSE_NOT_FOUND = 4404
CLOSE_STOPPED = 4410
CLOSE_IDLE = 4408


class Share(BaseModel):
    token: str
    view_url: str
    expires_ms: int


@dataclass(frozen=True)
class Viewer:
    role: Literal["owner", "viewer"]
    status: ContainerStatusHash


def share_secret(settings: Settings) -> str:
    """The key that signs share links: every gateway must have the same one
    (`TRIBUTARY_SHARE_SECRET`; locally, a file in the data folder the gateways share)."""
    if settings.share_secret:
        return settings.share_secret
    path = settings.data_dir.resolve() / "share.key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileExistsError):  # another gateway made it first
            with path.open("x") as out:
                out.write(secrets.token_urlsafe(48))
            path.chmod(0o600)
    return path.read_text().strip()


def mint(settings: Settings, container_id: str, owner: str, ttl_s: int) -> tuple[str, int]:
    expires = int(time.time()) + ttl_s
    claims = {"cid": container_id, "scope": SCOPE, "sub": owner, "exp": expires}
    return jwt.encode(claims, share_secret(settings), algorithm="HS256"), expires * 1000


def shared(settings: Settings, token: str, container_id: str) -> bool:
    """Whether `token` is a live view-only link to this container."""
    try:
        claims = jwt.decode(token, share_secret(settings), algorithms=["HS256"])
    except jwt.PyJWTError:
        return False
    return bool(claims.get("cid") == container_id and claims.get("scope") == SCOPE)


async def _status(state: Any, container_id: str) -> ContainerStatusHash | None:
    key = keys.container(state.settings.namespace, container_id)
    raw = await state.redis.hgetall(key)
    return ContainerStatusHash.from_fields(raw) if raw else None


async def refuse(websocket: WebSocket, reason: str, code: int = 1008) -> None:
    """Close with a code and a reason the client can read (closing before the handshake
    would only tell it HTTP 403)."""
    await websocket.accept(subprotocol=_binary(websocket))
    await websocket.close(code=code, reason=reason)


def _binary(websocket: WebSocket) -> str | None:
    """noVNC asks for the `binary` subprotocol; answer with it when asked."""
    return "binary" if "binary" in (websocket.scope.get("subprotocols") or []) else None


async def viewer_of(websocket: WebSocket, container_id: str) -> Viewer | str:
    """The viewer's role on this desktop, or why not (a close reason)."""
    state = websocket.app.state
    try:
        status = await _status(state, container_id)
    except RedisError:
        return "redis_unavailable"
    if status is None or not status.address:
        return "no_such_desktop"
    share = websocket.query_params.get("share")
    if share is not None:
        return (
            Viewer("viewer", status)
            if shared(state.settings, share, container_id)
            else ("invalid_share_token")
        )
    try:
        principal = await state.auth(websocket)
    except ApiError as exc:
        return exc.error
    user = principal.user_id if principal else websocket.query_params.get("subject")
    if not user or user != status.user:
        return "no_such_desktop"  # another user's is as if there were none
    return Viewer("owner", status)


@router.post(
    "/containers/{container_id}/share",
    response_model=Share,
    responses=ERRORS,
    summary="Mint a view-only link to one of the caller's desktops (short-lived).",
)
async def share_desktop(
    request: Request,
    container_id: str = PathParam(pattern=ID_PATTERN),
    user: str = Depends(caller),
) -> Share:
    settings = request.app.state.settings
    key = keys.container(settings.namespace, container_id)
    status = await read_hash(request, ContainerStatusHash, key, user)
    if not status.display:
        raise ApiError(409, "not_a_desktop", "This container has no display (yet).")
    token, expires_ms = mint(settings, container_id, user, settings.share_ttl_s)
    view_url = f"/v1/containers/{container_id}/view?share={token}"
    return Share(token=token, view_url=view_url, expires_ms=expires_ms)


@router.get(
    "/containers/{container_id}/view",
    response_class=HTMLResponse,
    summary="The desktop viewer page (noVNC on the relay, the container's events beside it).",
)
async def view_page(
    request: Request, container_id: str = PathParam(pattern=ID_PATTERN)
) -> HTMLResponse:
    # The page itself holds nothing: the sockets it opens check the credential it carries.
    query = {k: v for k, v in request.query_params.items() if k in ("share", "api_key", "token")}
    if not query:
        raise ApiError(401, "unauthenticated", "A share link, or api_key/token, is required.")
    credential = "&".join(f"{k}={html.escape(v, quote=True)}" for k, v in query.items())
    return HTMLResponse(PAGE.format(cid=container_id, credential=credential))


@router.websocket("/containers/{container_id}/display")
async def display(websocket: WebSocket, container_id: str) -> None:
    state = websocket.app.state
    settings: Settings = state.settings
    viewer = await viewer_of(websocket, container_id)
    if isinstance(viewer, str):
        await refuse(websocket, viewer)
        return
    address = viewer.status.address
    assert address is not None
    port = VNC_PORT if viewer.role == "owner" else VNC_VIEW_PORT
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(address, port), 5)
    except (OSError, TimeoutError):
        await refuse(websocket, "desktop_unreachable", code=1011)
        return
    await websocket.accept(subprotocol=_binary(websocket))
    session = _Session(viewer.role, time.monotonic())
    joined_ms = int(time.time() * 1000)
    reason = await session.relay(websocket, reader, writer, state, container_id, settings)
    writer.close()
    with contextlib.suppress(Exception):
        await writer.wait_closed()
    code = {"stopped": CLOSE_STOPPED, "idle": CLOSE_IDLE}.get(reason.split(":")[0], 1000)
    with contextlib.suppress(Exception):
        await websocket.close(code=code, reason=reason[:120])
    await _record(state, container_id, viewer.status.user, session, joined_ms, reason)


class _Session:
    """One viewer's relay: bytes each way, the last time a byte moved."""

    def __init__(self, role: Literal["owner", "viewer"], started: float) -> None:
        self.role = role
        self.id = uuid.uuid4().hex
        self.to_viewer = 0
        self.from_viewer = 0
        self.last = started

    async def relay(
        self,
        websocket: WebSocket,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        state: Any,
        container_id: str,
        settings: Settings,
    ) -> str:
        """Until one side closes, the viewer idles out or the container stops: why it ended."""
        tasks = {
            asyncio.create_task(self._down(websocket, reader, settings)),
            asyncio.create_task(self._up(websocket, writer)),
            asyncio.create_task(self._watch(state, container_id, settings)),
        }
        done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        results = [t.result() for t in done if not t.cancelled() and t.exception() is None]
        return str(results[0]) if results else "error"

    async def _down(
        self, websocket: WebSocket, reader: asyncio.StreamReader, settings: Settings
    ) -> str:
        """Desktop → browser, at most `desktop_viewer_bytes_per_s`."""
        rate = settings.desktop_viewer_bytes_per_s
        allowance, stamp = float(rate), time.monotonic()
        while True:
            data = await reader.read(CHUNK)
            if not data:
                return "desktop_closed"
            now = time.monotonic()
            allowance = min(float(rate), allowance + (now - stamp) * rate)
            stamp = now
            allowance -= len(data)
            if allowance < 0:  # over the viewer's bandwidth: wait it off
                await asyncio.sleep(-allowance / rate)
            await websocket.send_bytes(data)
            self.to_viewer += len(data)
            self.last = time.monotonic()

    async def _up(self, websocket: WebSocket, writer: asyncio.StreamWriter) -> str:
        """Browser → desktop."""
        try:
            while True:
                message = await websocket.receive()
                if message["type"] == "websocket.disconnect":
                    return "viewer_closed"
                data = message.get("bytes") or (message.get("text") or "").encode()
                writer.write(data)
                await writer.drain()
                self.from_viewer += len(data)
                self.last = time.monotonic()
        except WebSocketDisconnect:
            return "viewer_closed"

    async def _watch(self, state: Any, container_id: str, settings: Settings) -> str:
        """The container's state (it stopped: say why) and the viewer's idle time."""
        while True:
            await asyncio.sleep(1.0)
            if time.monotonic() - self.last > settings.desktop_idle_s:
                return "idle"
            with contextlib.suppress(RedisError):
                status = await _status(state, container_id)
                if status is None or status.state in ENDED:
                    why = status.reason if status and status.reason else "gone"
                    state_ = status.state if status and status.state else "stopped"
                    return f"stopped: {state_} ({why})"


async def _record(
    state: Any,
    container_id: str,
    owner: str | None,
    session: _Session,
    joined_ms: int,
    reason: str,
) -> None:
    """The session, as a `desktop.session` event (at-least-once; a broker down loses
    nothing of the desktop's, only this record, which is logged)."""
    settings: Settings = state.settings
    data = DesktopSession(
        container_id=container_id,
        session_id=session.id,
        role=session.role,
        joined_ms=joined_ms,
        left_ms=int(time.time() * 1000),
        bytes_to_viewer=session.to_viewer,
        bytes_from_viewer=session.from_viewer,
        close_reason=reason,
    )
    event = CloudEvent(
        id=session.id,
        source=SOURCE,
        type=DESKTOP_SESSION,
        subject=owner or "unknown",
        data=data.model_dump(),
    )
    try:
        await state.producer.send(DESKTOP_SESSIONS.physical(settings.namespace), event)
    except DependencyUnavailable as exc:
        log.warning("desktop session not recorded", session=session.id, error=exc.message)


PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Desktop {cid}</title>
<style>
  body {{ margin: 0; display: flex; height: 100vh; font: 13px sans-serif; background: #222; }}
  #screen {{ flex: 1; }}
  #side {{ width: 300px; overflow: auto; background: #f4f4f4; padding: 8px; }}
  #side li {{ margin: 4px 0; }}
</style>
</head>
<body>
<div id="screen"></div>
<div id="side">
  <div id="status">connecting</div>
  <ol id="events"></ol>
  <p><a href="/static/novnc/LICENSE.txt">noVNC</a> (MPL 2.0)</p>
</div>
<script type="module"
  onerror="document.getElementById('status').textContent = 'the viewer failed to load: reload'">
import RFB from "/static/novnc/core/rfb.js";
const base = (location.protocol === "https:" ? "wss://" : "ws://") + location.host;
const credential = "{credential}";
const viewer = credential.startsWith("share=");
const rfb = new RFB(document.getElementById("screen"),
  base + "/v1/containers/{cid}/display?" + credential, {{ wsProtocols: ["binary"] }});
rfb.viewOnly = viewer;
rfb.scaleViewport = true;
rfb.focusOnClick = true;
window.rfb = rfb;
const status = document.getElementById("status");
rfb.addEventListener("connect", () => {{
  status.textContent = viewer ? "watching" : "connected";
  document.body.dataset.connected = "1";
}});
rfb.addEventListener("disconnect", () => {{
  status.textContent = "disconnected";
  document.body.dataset.connected = "0";
}});
const room = new WebSocket(base + "/v1/ws?channel=container&id={cid}&" + credential);
room.onmessage = (m) => {{
  const event = JSON.parse(m.data);
  if (event.control) return;  // the resume message
  const li = document.createElement("li");
  li.textContent = event.type + (event.data.reason ? " (" + event.data.reason + ")" : "");
  document.getElementById("events").appendChild(li);
}};
</script>
</body>
</html>
"""
