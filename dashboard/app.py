"""The admin dashboard: a small server-rendered site of its own process (`tributary dashboard`).

Pages: an overview (every process's health and stalls, lag per group, charts of events/s,
job latency p50/p99 and DLQ growth from ClickHouse), the DLQ (filter by reason, show a
letter, retry one or all, purge after a typed confirmation), a user's jobs and containers,
a job's timeline, and consumer lag per group and partition.

Never open: the same admin credential as the projector's query API (`tributary.admin`),
given once on the login page, then a signed session cookie (SameSite=Strict, so another
site cannot make a logged-in browser post a retry or a purge).
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator
from dataclasses import asdict
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import httpx
import orjson
from redis.exceptions import RedisError
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from dashboard import queries, views
from dashboard.sources import QueryFailed, Sources
from schemas import headers as h
from schemas.envelope import header_value
from tributary import admin, redis_client
from tributary.settings import Settings

HERE = Path(__file__).resolve().parent
CHART_JS = HERE / "static" / "node_modules" / "chart.js" / "dist"
OPEN_PREFIXES = ("/login", "/healthz/", "/static/")
PURGE_WORD = "purge"

templates = Jinja2Templates(directory=HERE / "templates")


def sources(request: Request) -> Sources:
    return request.app.state.sources  # type: ignore[no-any-return]


def page(request: Request, name: str, code: int = 200, **context: Any) -> Response:
    return templates.TemplateResponse(request, name, context, status_code=code)


def problem(request: Request, status: int, message: str) -> Response:
    return page(request, "problem.html", status, message=message)


def back_to_list(reason: str | None, done: str) -> RedirectResponse:
    query = {"done": done, **({"reason": reason} if reason else {})}
    return RedirectResponse(f"/dlq?{urlencode(query)}", status_code=303)


class LoggedIn:
    """Every page but the login, health and static files wants a logged-in session."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"].startswith(OPEN_PREFIXES):
            await self.app(scope, receive, send)
            return
        if scope.get("session", {}).get("admin") is True:
            await self.app(scope, receive, send)
            return
        query = scope["query_string"].decode()
        target = quote(scope["path"] + (f"?{query}" if query else ""))
        await RedirectResponse(f"/login?next={target}", status_code=303)(scope, receive, send)


# Login ---------------------------------------------------------------------------------


async def login_form(request: Request) -> Response:
    return page(request, "login.html", next=request.query_params.get("next", "/"), failed=False)


async def login(request: Request) -> Response:
    form = await request.form()
    key = str(form.get("key", "")).strip()
    target = str(form.get("next") or "/")
    if not target.startswith("/") or target.startswith("//"):
        target = "/"  # only pages of this site
    if not admin.accepts(key, request.app.state.hashes):
        return page(request, "login.html", 401, next=target, failed=True)
    request.session.clear()
    request.session["admin"] = True
    return RedirectResponse(target, status_code=303)


async def logout(request: Request) -> Response:
    request.session.clear()
    return RedirectResponse("/login", status_code=303)


# Overview ------------------------------------------------------------------------------


async def overview(request: Request) -> Response:
    src = sources(request)
    health, lag, charts = await asyncio.gather(
        src.health(), _lag(src), _charts(src), return_exceptions=True
    )
    return page(
        request,
        "overview.html",
        health=_or_error(health),
        lag_totals=views.lag_by_group(lag) if isinstance(lag, list) else None,
        lag_error=None if isinstance(lag, list) else repr(lag),
        charts=None if isinstance(charts, BaseException) else charts,
        charts_error=str(charts) if isinstance(charts, BaseException) else None,
    )


def _or_error(value: Any) -> Any:
    if isinstance(value, BaseException):
        return {"error": repr(value)}
    return value


async def _charts(src: Sources) -> dict[str, Any]:
    """The overview's three charts (the projector runs their queries one after another)."""
    events = await src.query(queries.events_per_minute(src.db))
    latency = await src.query(queries.job_latency_per_minute(src.db))
    letters = await src.query(queries.dead_letters_per_minute(src.db))
    return {
        "events": asdict(views.series(events, ["events/s"])),
        "latency": asdict(views.series(views.quantile_rows(latency), ["p50 ms", "p99 ms"])),
        "dead_letters": asdict(views.series(letters, ["letters/min"])),
    }


# The DLQ ---------------------------------------------------------------------------------


async def dlq(request: Request) -> Response:
    src = sources(request)
    reason = request.query_params.get("reason") or None
    show_retried = request.query_params.get("retried") == "1"
    letters, retried = await asyncio.gather(src.letters(), src.retried())
    listing = views.letter_list(letters, retried, reason, show_retried)
    return page(
        request,
        "dlq.html",
        listing=listing,
        reason=reason,
        show_retried=show_retried,
        retried=retried,
        done=request.query_params.get("done"),
        purge_word=PURGE_WORD,
    )


async def letter(request: Request) -> Response:
    src = sources(request)
    position = request.path_params["position"]
    letters, retried = await asyncio.gather(src.letters(), src.retried())
    found = views.find_letter(letters, position)
    if found is None:
        return problem(request, 404, f"No dead letter at {position} (purged, or never there).")
    value = found.value.decode("utf-8", "replace") if found.value is not None else None
    with contextlib.suppress(ValueError, TypeError):
        value = orjson.dumps(orjson.loads(found.value or b""), option=orjson.OPT_INDENT_2).decode()
    headers = [(k, v.decode("utf-8", "replace")) for k, v in found.headers]
    subject = header_value(found.headers, h.CE_SUBJECT)
    return page(
        request,
        "letter.html",
        letter=found,
        user=subject if subject and views.valid_user(subject) else None,
        value=value,
        headers=headers,
        retried=position in retried,
    )


async def retry(request: Request) -> Response:
    src = sources(request)
    form = await request.form()
    reason = str(form.get("reason") or "") or None
    letters, retried = await asyncio.gather(src.letters(), src.retried())
    if form.get("all") == "1":
        chosen = views.letter_list(letters, retried, reason, show_retried=False).letters
    else:
        found = views.find_letter(letters, str(form.get("position", "")))
        if found is None:
            return problem(request, 404, "That dead letter is no longer on the topic.")
        chosen = [found]
    placed = await src.retry(chosen)
    sent = sum(1 for p in placed if p.sent)
    skipped = [str(p) for p in placed if not p.sent]
    done = f"retried {sent} of {len(chosen)}" + (f"; {'; '.join(skipped)}" if skipped else "")
    return back_to_list(reason, done)


async def purge(request: Request) -> Response:
    form = await request.form()
    if str(form.get("confirm", "")).strip().lower() != PURGE_WORD:
        return problem(request, 400, f'Nothing purged: type "{PURGE_WORD}" in the box to confirm.')
    count = await sources(request).purge()
    return back_to_list(None, f"purged {count} dead letters")


# Jobs and containers ---------------------------------------------------------------------


async def find_user(request: Request) -> Response:
    user = request.query_params.get("user", "").strip()
    if not views.valid_user(user):
        return problem(request, 400, "Not a user id (letters, digits and _ . @ : -).")
    return RedirectResponse(f"/users/{quote(user)}", status_code=303)


async def user(request: Request) -> Response:
    user_id = request.path_params["user_id"]
    if not views.valid_user(user_id):
        return problem(request, 400, "Not a user id (letters, digits and _ . @ : -).")
    src = sources(request)
    jobs, containers = await asyncio.gather(
        src.query(queries.user_jobs(src.db, user_id)),
        src.query(queries.user_containers(src.db, user_id)),
    )
    return page(request, "user.html", user_id=user_id, jobs=jobs, containers=containers)


async def job(request: Request) -> Response:
    job_id = request.path_params["job_id"]
    if not views.valid_id(job_id):
        return problem(request, 400, "Not a job id.")
    src = sources(request)
    rows, status = await asyncio.gather(
        src.query(queries.job_steps(src.db, job_id)), src.job_status(job_id)
    )
    if not rows and status is None:
        return problem(request, 404, f"No job {job_id} in ClickHouse or the status store.")
    steps = views.timeline(r[:5] for r in rows)
    owner = rows[0][5] if rows else status.user if status else None
    kind = rows[0][6] if rows else status.kind if status else None
    return page(
        request, "job.html", job_id=job_id, steps=steps, status=status, owner=owner, kind=kind
    )


# Lag -------------------------------------------------------------------------------------


async def _lag(src: Sources) -> list[views.LagRow]:
    groups, committed, ends = await src.offsets()
    return views.lag_rows(groups, committed, ends)


async def lag(request: Request) -> Response:
    rows = await _lag(sources(request))
    return page(request, "lag.html", rows=rows, totals=views.lag_by_group(rows))


# Its own health --------------------------------------------------------------------------


async def live(request: Request) -> Response:
    return JSONResponse({"status": "up"})


async def ready(request: Request) -> Response:
    """Up when Redis answers (the retried letters live there); Kafka and the projector are
    asked per page, and a page says which one did not answer."""
    try:
        await sources(request).redis.ping()
    except (RedisError, OSError) as exc:
        return JSONResponse({"status": "down", "redis": repr(exc)}, status_code=503)
    return JSONResponse({"status": "up"})


async def query_failed(request: Request, exc: Exception) -> Response:
    return problem(request, 503, f"ClickHouse (through the projector) did not answer: {exc}")


def create_app(settings: Settings) -> Starlette:
    hashes = admin.server_hashes(settings, settings.dashboard_host)  # never open

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        redis = redis_client.connect(settings, name="dashboard")
        await redis_client.initialize(redis)
        async with httpx.AsyncClient(timeout=settings.query_max_execution_s + 30) as http:
            app.state.sources = Sources(settings, redis, http)
            app.state.hashes = hashes
            try:
                yield
            finally:
                await redis.aclose()

    routes = [
        Route("/", overview),
        Route("/login", login_form, methods=["GET"]),
        Route("/login", login, methods=["POST"]),
        Route("/logout", logout, methods=["POST"]),
        Route("/dlq", dlq),
        Route("/dlq/retry", retry, methods=["POST"]),
        Route("/dlq/purge", purge, methods=["POST"]),
        Route("/dlq/{position:str}", letter),
        Route("/users", find_user),
        Route("/users/{user_id:str}", user),
        Route("/jobs/{job_id:str}", job),
        Route("/lag", lag),
        Route("/healthz/live", live),
        Route("/healthz/ready", ready),
        Mount("/static/chart", StaticFiles(directory=CHART_JS, check_dir=False), name="chart"),
        Mount("/static", StaticFiles(directory=HERE / "static", check_dir=False), name="static"),
    ]
    return Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={QueryFailed: query_failed},
        middleware=[
            Middleware(
                SessionMiddleware,
                secret_key=settings.dashboard_session_secret or secrets.token_urlsafe(32),
                session_cookie="tributary_admin",
                max_age=settings.dashboard_session_hours * 3600,
                same_site="strict",
                https_only=settings.dashboard_secure_cookie,
            ),
            Middleware(LoggedIn),
        ],
    )
