"""The dashboard's HTTP surface: HTML pages and a JSON API over the same views.

Routes are thin: parse the request, call :class:`~dedup.web.views.Dashboard`,
render a template or return the view as JSON.  Jinja2 autoescaping is on
for every template, because article titles and bodies are untrusted feed
text and routinely contain markup.

Ids are opaque strings: routes take them with the ``path`` converter (the
server decodes ``%2F`` back to ``/``) or in the query, and every link is
built by :func:`~dedup.web.views.story_url` and its siblings.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import re
import secrets
import time
from pathlib import Path
from typing import Any, AsyncIterator
from urllib.parse import urlencode

import jinja2
import swagger_ui_bundle
from fastapi import Depends, FastAPI, Header, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..records import BadInput, IndexMismatch, IndexUnavailable
from ..service import Deduper
from .views import (EXPORT_FORMATS, MIN_SIZE, PER_PAGE, SORTS, WIRE_SOURCES, Dashboard, Filters, NotFound,
                    article_url, compare_url, event_csv, event_export, event_url, similarity_url, story_csv,
                    story_export, story_url, to_json)

TEMPLATES = Path(__file__).parent / "templates"
STATIC = Path(__file__).parent / "static"
#: largest request body the write API reads; an article is a few kB, a long one well under 1 MB
MAX_BODY = 2_000_000
#: streams that never end on their own: HEAD is refused there rather than held open
NO_HEAD = ("/api/stories/events",)


def _span(first: str, last: str) -> str:
    """Absolute time span of a story; minutes, not seconds and zones."""
    a, b = first[:16].replace("T", " "), last[:16].replace("T", " ")
    if not a:
        return "undated"
    return a if a == b else f"{a} – {b}"


def _http_url(url: str) -> str:
    """Only http(s) links are rendered: a feed's ``javascript:`` URL must not become a live link."""
    return url if url.lower().startswith(("http://", "https://")) else ""


def export_url(kind: str, item_id: str, fmt: str, list_query: str = "") -> str:
    """Where a story (``kind`` "story") or the event of a story ("event") downloads as ``fmt``."""
    key = "id" if kind == "story" else "story"
    return f"/api/export/{kind}?" + urlencode({key: item_id, "format": fmt}) + (f"&{list_query}" if list_query else "")


def _templates() -> Jinja2Templates:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        autoescape=True,  # untrusted titles and bodies: never render them raw
        undefined=jinja2.StrictUndefined,
    )
    env.filters["span"] = _span
    env.filters["http_url"] = _http_url
    env.filters["story_url"] = story_url
    env.filters["article_url"] = article_url
    env.globals["compare_url"] = compare_url
    env.globals["event_url"] = event_url
    env.globals["SORTS"] = SORTS
    env.globals["export_url"] = export_url
    env.globals["similarity_url"] = similarity_url
    return Jinja2Templates(env=env)


def _csp(nonce: str) -> str:
    # Inline scripts run only with this response's nonce; styles are inline attributes of the templates.
    return ("default-src 'self'; "
            f"script-src 'self' 'nonce-{nonce}'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
            "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")


class Guard:
    """ASGI middleware: security headers with a per-response CSP nonce, HEAD as GET without a body, and a
    request body limit checked on ``Content-Length`` before anything is read."""

    def __init__(self, app: ASGIApp, max_body: int = MAX_BODY) -> None:
        self.app = app
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        nonce = secrets.token_urlsafe(16)
        scope.setdefault("state", {})["nonce"] = nonce
        head = scope["method"] == "HEAD" and scope["path"] not in NO_HEAD
        if head:
            scope = {**scope, "method": "GET"}

        async def guarded_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", [])
                           if k.lower() not in (b"content-security-policy", b"x-frame-options")]
                headers += [
                    (b"content-security-policy", _csp(nonce).encode()),
                    (b"x-frame-options", b"DENY"),
                    (b"x-content-type-options", b"nosniff"),
                    (b"referrer-policy", b"same-origin"),
                ]
                message = {**message, "headers": headers}
            elif head and message["type"] == "http.response.body":
                message = {**message, "body": b""}
            await send(message)

        length = dict(scope.get("headers", [])).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_body):
            text = (f"request body of {length.decode(errors='replace')} bytes is over the limit of "
                    f"{self.max_body:,} bytes: send one article per request")
            await JSONResponse({"detail": text}, status_code=413)(scope, receive, guarded_send)
            return
        await self.app(scope, receive, guarded_send)


def _api(request: Request) -> bool:
    return request.url.path.startswith(("/api/", "/openapi"))


def create_app(deduper: Deduper, admin_token: str | None = None, poll_seconds: float = 3.0,
               max_body: int = MAX_BODY, wire_sources: tuple[str, ...] = WIRE_SOURCES) -> FastAPI:
    """Build the dashboard over any Deduper (in-process or Redis).

    ``admin_token`` enables the write API (ingest, delete); without it the
    dashboard is read-only, so a public viewer cannot change the index.
    ``poll_seconds`` is how often the list page asks for news; ``max_body``
    the largest request body accepted (413 beyond, before reading it);
    ``wire_sources`` the news agencies the list counts as wire (:data:`~dedup.web.views.WIRE_SOURCES`).
    """
    dash = Dashboard(deduper, wire_sources)
    templates = _templates()
    app = FastAPI(
        title="dedup dashboard",
        description="Story clusters of near-duplicate news and what each variant adds.",
        version="0.1.0",
        docs_url=None,  # served below from the packaged Swagger UI: no CDN, works offline
        redoc_url=None,
    )
    app.state.dashboard = dash
    app.add_middleware(Guard, max_body=max_body)
    app.mount("/docs/assets", StaticFiles(directory=swagger_ui_bundle.swagger_ui_path), name="docs-assets")
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    def require_admin(
        authorization: str | None = Header(default=None),
        x_admin_token: str | None = Header(default=None),
    ) -> None:
        """401 when no token was sent, 403 when it is wrong or the dashboard is read-only."""
        if admin_token is None:
            raise HTTPException(403, "the dashboard is read-only: start it with --admin-token or DEDUP_ADMIN_TOKEN")
        sent = x_admin_token
        if sent is None and authorization and authorization.lower().startswith("bearer "):
            sent = authorization[7:].strip()
        if not sent:
            raise HTTPException(401, "admin token required (Authorization: Bearer TOKEN)",
                                headers={"WWW-Authenticate": "Bearer"})
        if not hmac.compare_digest(sent.encode(), admin_token.encode()):
            raise HTTPException(403, "wrong admin token")

    def page(request: Request, name: str, status: int = 200, **ctx: Any) -> HTMLResponse:
        ctx.setdefault("nonce", request.state.nonce)
        ctx.setdefault("admin", admin_token is not None)  # the remove button shows where it can work
        return templates.TemplateResponse(request, name, ctx, status_code=status)

    def error(request: Request, status: int, title: str, message: str,
              headers: dict[str, str] | None = None) -> Response:
        """JSON ``{"detail": ...}`` for the API, an HTML page for people."""
        if _api(request):
            return JSONResponse({"detail": message}, status_code=status, headers=headers)
        response = page(request, "error.html", status, title=title, message=message, code=status)
        response.headers.update(headers or {})
        return response

    @app.exception_handler(NotFound)
    async def not_found(request: Request, exc: NotFound) -> Response:
        what = exc.args[0] if exc.args else ""
        if _api(request):
            return JSONResponse({"detail": f"not found: {what}"}, status_code=404)
        return page(request, "error.html", 404, title="Not found", code=404,
                    message=f"Nothing is stored under the id {what!r}. Check the id, or search the stories.")

    @app.exception_handler(IndexUnavailable)
    async def unavailable(request: Request, exc: IndexUnavailable) -> Response:
        return error(request, 503, "Index unavailable",
                     f"The story index cannot be reached right now ({exc}). Pages work again as soon as it is "
                     "back; reload in a few seconds.", headers={"Retry-After": "5"})

    @app.exception_handler(IndexMismatch)
    async def mismatch(request: Request, exc: IndexMismatch) -> Response:
        return error(request, 503, "Index settings differ", str(exc))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if _api(request):
            return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)
        titles = {404: "Not found", 405: "Method not allowed", 401: "Sign-in required", 403: "Forbidden"}
        message = exc.detail if isinstance(exc.detail, str) else json.dumps(exc.detail)
        if exc.status_code == 404 and message == "Not Found":
            message = f"There is no page at {request.url.path}. Start from the story list."
        return page(request, "error.html", exc.status_code, title=titles.get(exc.status_code, "Error"),
                    message=message, code=exc.status_code)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> Response:
        problems = [f"{'.'.join(str(p) for p in e['loc'][1:]) or e['loc'][0]}: {e['msg']}" for e in exc.errors()]
        if _api(request):
            return JSONResponse({"detail": exc.errors()}, status_code=422)
        return page(request, "error.html", 400, title="Bad request", code=400,
                    message="These parameters cannot be used: " + "; ".join(problems) + ".")

    @app.exception_handler(Exception)
    async def crashed(request: Request, exc: Exception) -> Response:
        return error(request, 500, "Server error",
                     f"The dashboard failed on this request ({type(exc).__name__}); the server log has details.")

    def _filters(q: str, source: str, after: str, before: str, page: int, per_page: int, sort: str,
                 min_size: int) -> tuple[Filters, list[str]]:
        return Filters(q=q, source=source, after=after, before=before, page=page, per_page=per_page, sort=sort,
                       min_size=min_size).checked()

    def list_json(f: Filters) -> dict[str, Any]:
        out = to_json(dash.list_stories(f))
        out["changed"] = True
        return out

    # -- JSON API -------------------------------------------------------------
    sort_q = Query("activity", description=f"order: {', '.join(SORTS)}")
    min_size_q = Query(MIN_SIZE, ge=1, description="hide stories with fewer articles (1 shows single-article ones)")

    @app.get("/api/stories", tags=["stories"])
    def api_stories(
        q: str = "", source: str = "", after: str = Query("", description="YYYY-MM-DD"),
        before: str = Query("", description="YYYY-MM-DD"),
        page: int = Query(1, ge=1), per_page: int = Query(PER_PAGE, ge=1, le=200),
        sort: str = sort_q, min_size: int = min_size_q,
        since: str = Query("", description="version from the previous answer; unchanged lists answer without stories"),
    ) -> Any:
        """Stories in the asked order; ``changed`` is false when ``since`` is still current.

        A filter value that cannot be used answers 422 naming it; a page past
        the end answers the last page with a ``messages`` entry."""
        f, problems = _filters(q, source, after, before, page, per_page, sort, min_size)
        if problems:
            return JSONResponse({"detail": problems}, status_code=422)
        if since:
            current = dash.version()
            if current == since:
                return {"changed": False, "version": current}
        return list_json(f)

    @app.get("/api/stories/events", tags=["stories"])
    async def api_story_events(
        request: Request, q: str = "", source: str = "", after: str = "", before: str = "",
        page: int = Query(1, ge=1), per_page: int = Query(PER_PAGE, ge=1, le=200),
        sort: str = sort_q, min_size: int = min_size_q,
        since: str = Query("", description="version the client shows; the first event comes only when it is stale"),
        max_seconds: float = Query(300.0, ge=0, le=3600, description="stream lifetime; browsers reconnect by themselves"),
        last_event_id: str | None = Header(default=None),
    ) -> StreamingResponse:
        """Server-sent events: a ``stories`` event (the ``/api/stories`` answer) whenever the list changes.

        Pushing saves each open list page a request per poll interval; the
        server checks the version (two cheap index reads) every
        ``poll_seconds`` and ranks nothing when it is unchanged.  The stream
        ends after ``max_seconds`` so proxies and restarts never strand a
        client: ``EventSource`` reconnects with ``Last-Event-ID`` (the version
        it has).  Pages fall back to polling where EventSource fails.  While
        the index is unreachable the stream only keeps the connection alive.
        """
        f, _ = _filters(q, source, after, before, page, per_page, sort, min_size)
        shown = last_event_id or since
        deadline = time.monotonic() + max_seconds

        async def stream() -> AsyncIterator[str]:
            nonlocal shown
            yield f"retry: {int(poll_seconds * 1000)}\n\n"
            quiet = 0.0
            while True:
                try:
                    current = await run_in_threadpool(dash.version)
                    out = await run_in_threadpool(list_json, f) if current != shown else None
                except IndexUnavailable:
                    out = None
                if out is not None:
                    shown = out["version"]
                    yield f"id: {shown}\nevent: stories\ndata: {json.dumps(out)}\n\n"
                    quiet = 0.0
                elif quiet >= 15:
                    yield ": keep-alive\n\n"  # lets proxies and the client see the connection is alive
                    quiet = 0.0
                if time.monotonic() >= deadline or await request.is_disconnected():
                    return
                await asyncio.sleep(poll_seconds)
                quiet += poll_seconds

        return StreamingResponse(stream(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    @app.get("/api/compare", tags=["stories"])
    def api_compare(story: str, a: str, b: str) -> dict[str, Any]:
        """Two variants of a story aligned sentence by sentence (aligned, reworded, only-left, only-right)."""
        return to_json(dash.compare(story, a, b))

    @app.get("/api/event", tags=["stories"])
    def api_event(story: str, q: str = "", source: str = "", after: str = "", before: str = "",
                  per_page: int = Query(PER_PAGE, ge=1, le=200), sort: str = sort_q,
                  min_size: int = min_size_q) -> dict[str, Any]:
        """Full coverage: the stories of ``story``'s event, and what each adds (the list parameters are accepted
        for links made from a list page, and do not narrow the event)."""
        return to_json(dash.event(story))

    def export(kind: str, item_id: str, fmt: str, doc: dict[str, Any], as_csv: Any) -> Response:
        name = re.sub(r"[^A-Za-z0-9._-]+", "_", item_id).strip("._")[:60] or kind
        disposition = {"Content-Disposition": f'attachment; filename="{kind}-{name}.{fmt}"'}
        if fmt == "csv":
            return Response(as_csv(doc), media_type="text/csv; charset=utf-8", headers=disposition)
        return JSONResponse(doc, headers=disposition)

    def export_format(fmt: str) -> str:
        if fmt not in EXPORT_FORMATS:
            raise HTTPException(422, f"format={fmt!r} is not an export format: use one of {', '.join(EXPORT_FORMATS)}")
        return fmt

    format_q = Query("json", description=f"{' or '.join(EXPORT_FORMATS)}")

    @app.get("/api/export/story", tags=["export"])
    def api_export_story(id: str, format: str = format_q) -> Response:
        """A story as a file: JSON (header and articles) or CSV (one row per article, lists one item a line)."""
        fmt = export_format(format)
        return export("story", id, fmt, story_export(dash.story(id), dash.wire_sources), story_csv)

    @app.get("/api/export/event", tags=["export"])
    def api_export_event(story: str, format: str = format_q, q: str = "", source: str = "", after: str = "",
                         before: str = "", per_page: int = Query(PER_PAGE, ge=1, le=200), sort: str = sort_q,
                         min_size: int = min_size_q) -> Response:
        """The event of ``story`` (as ``/api/event`` finds it) as a file: JSON, or CSV with one row per story."""
        fmt = export_format(format)
        e = dash.event(story)
        return export("event", e.id, fmt, event_export(e), event_csv)

    @app.get("/api/similarity", tags=["stories"])
    def api_similarity(story: str) -> dict[str, Any]:
        """Each variant's share of sentences shared with the most complete variant (the story page's column)."""
        return to_json(dash.similarity(story))

    @app.get("/api/story", tags=["stories"])
    def api_story_by_query(id: str) -> dict[str, Any]:
        """:func:`api_story` with the id in the query: for ids a path cannot carry (``.``, ``..``, ``events``)."""
        return to_json(dash.story(id))

    @app.get("/api/article", tags=["articles"])
    def api_article_by_query(id: str) -> dict[str, str]:
        """A stored article, the id in the query."""
        return dash.article(id)

    @app.delete("/api/article", tags=["admin"], dependencies=[Depends(require_admin)])
    def api_delete_by_query(id: str) -> dict[str, Any]:
        """Remove an article, the id in the query."""
        return {"deleted": id, "stories": dash.delete(id)}

    @app.get("/api/stories/{story_id:path}", tags=["stories"])
    def api_story(story_id: str) -> dict[str, Any]:
        """A story's variants ranked by unique information, shared core and timeline (any id, ``/`` as ``%2F``)."""
        return to_json(dash.story(story_id))

    @app.get("/api/articles/{article_id:path}", tags=["articles"])
    def api_article(article_id: str) -> dict[str, str]:
        """A stored article and its story."""
        return dash.article(article_id)

    @app.post("/api/articles", tags=["admin"], status_code=201, dependencies=[Depends(require_admin)])
    async def api_ingest(request: Request) -> dict[str, Any]:
        """Cluster one article (JSON object with id, text, title, source, published, url)."""
        body = bytearray()
        async for chunk in request.stream():  # counted as it arrives: a body without a length cannot overrun
            body += chunk
            if len(body) > max_body:
                raise HTTPException(413, f"request body is over the limit of {max_body:,} bytes: "
                                         "send one article per request")
        try:
            obj = json.loads(bytes(body))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise HTTPException(400, f"body is not JSON: {exc}") from exc
        try:
            assignment = await run_in_threadpool(dash.ingest, obj)
        except BadInput as exc:
            raise HTTPException(422, {"where": exc.where, "reason": exc.reason, "fix": exc.fix}) from exc
        return {"id": assignment.article_id, "story": assignment.story, "action": assignment.action,
                "merged": assignment.merged}

    @app.delete("/api/articles/{article_id:path}", tags=["admin"], dependencies=[Depends(require_admin)])
    def api_delete(article_id: str) -> dict[str, Any]:
        """Remove an article (kill or retraction); returns the stories its old story became."""
        return {"deleted": article_id, "stories": dash.delete(article_id)}

    # -- HTML pages -----------------------------------------------------------
    @app.get("/docs", response_class=HTMLResponse, include_in_schema=False)
    def docs_page(request: Request) -> HTMLResponse:
        return page(request, "docs.html")

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def list_page(
        request: Request, q: str = "", source: str = "", after: str = "", before: str = "",
        page_no: int = Query(1, ge=1, alias="page"), per_page: int = Query(PER_PAGE, ge=1, le=200),
        sort: str = "activity", min_size: int = Query(MIN_SIZE, ge=1),
    ) -> HTMLResponse:
        f, problems = _filters(q, source, after, before, page_no, per_page, sort, min_size)
        result = dash.list_stories(f)
        f = result.filters
        return page(
            request, "list.html", 400 if problems else 200, result=result, f=f, sources=dash.sources(),
            messages=problems + result.messages,
            prev_qs=f.query(result.page - 1) if result.page > 1 else None,
            next_qs=f.query(result.page + 1) if result.page < result.pages else None,
            api_query=f.query(), poll_ms=int(poll_seconds * 1000),
        )

    def story_or_member(request: Request, story_id: str) -> Response:
        try:
            # the similarity column, when not kept yet, is filled by the page's script from /api/similarity
            return page(request, "story.html", s=dash.story(story_id, similarity=False))
        except NotFound:
            owner = dash.story_of(story_id)
            if owner is not None:  # an article's id: its story
                return RedirectResponse(story_url(owner), status_code=307)
            base, _, tail = story_id.rpartition("/")
            if tail == "compare" and base:  # the older /story/ID/compare address
                return RedirectResponse(compare_url(base, request.query_params.get("a", ""),
                                                    request.query_params.get("b", "")), status_code=307)
            raise

    @app.get("/story", response_class=HTMLResponse, include_in_schema=False)
    def story_query_page(request: Request, id: str) -> Response:
        return story_or_member(request, id)

    @app.get("/story/{story_id:path}", response_class=HTMLResponse, include_in_schema=False)
    def story_page(request: Request, story_id: str) -> Response:
        return story_or_member(request, story_id)

    @app.get("/compare", response_class=HTMLResponse, include_in_schema=False)
    def compare_page(request: Request, story: str, a: str = "", b: str = "") -> HTMLResponse:
        s = dash.story(story, similarity=False)
        ids = [v.id for v in s.variants]
        a = a or (ids[0] if ids else "")
        b = b or (ids[1] if len(ids) > 1 else a)
        return page(request, "compare.html", s=s, c=dash.compare(story, a, b), ids=ids)

    @app.get("/event", response_class=HTMLResponse, include_in_schema=False)
    def event_page(request: Request, story: str, q: str = "", source: str = "", after: str = "", before: str = "",
                   per_page: int = Query(PER_PAGE, ge=1, le=200), sort: str = "activity",
                   min_size: int = Query(MIN_SIZE, ge=1)) -> HTMLResponse:
        f, _ = _filters(q, source, after, before, 1, per_page, sort, min_size)
        return page(request, "event.html", e=dash.event(story), list_query=f.query())

    @app.get("/article", response_class=HTMLResponse, include_in_schema=False)
    def article_query_page(request: Request, id: str) -> HTMLResponse:
        return page(request, "article.html", a=dash.article(id))

    @app.get("/article/{article_id:path}", response_class=HTMLResponse, include_in_schema=False)
    def article_page(request: Request, article_id: str) -> HTMLResponse:
        return page(request, "article.html", a=dash.article(article_id))

    return app


__all__ = ["create_app", "MAX_BODY"]
