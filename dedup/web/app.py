"""The dashboard's HTTP surface: HTML pages and a JSON API over the same views.

Routes are thin: parse the request, call :class:`~dedup.web.views.Dashboard`,
render a template or return the view as JSON.  Jinja2 autoescaping is on
for every template, because article titles and bodies are untrusted feed
text and routinely contain markup.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import time
from pathlib import Path
from typing import Any, AsyncIterator
from urllib.parse import urlencode

import jinja2
from fastapi import Depends, FastAPI, Header, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, StreamingResponse
from fastapi.templating import Jinja2Templates
from starlette.concurrency import run_in_threadpool

from ..records import BadInput
from ..service import Deduper
from .views import PER_PAGE, Dashboard, Filters, NotFound, to_json

TEMPLATES = Path(__file__).parent / "templates"


def _span(first: str, last: str) -> str:
    """Human time span of a story; the list shows minutes, not seconds and zones."""
    a, b = first[:16].replace("T", " "), last[:16].replace("T", " ")
    if not a:
        return "undated"
    return a if a == b else f"{a} – {b}"


def _http_url(url: str) -> str:
    """Only http(s) links are rendered: a feed's ``javascript:`` URL must not become a live link."""
    return url if url.lower().startswith(("http://", "https://")) else ""


def _templates() -> Jinja2Templates:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        autoescape=True,  # untrusted titles and bodies: never render them raw
        undefined=jinja2.StrictUndefined,
    )
    env.filters["span"] = _span
    env.filters["http_url"] = _http_url
    return Jinja2Templates(env=env)


def _filters(q: str, source: str, after: str, before: str, page: int, per_page: int) -> Filters:
    return Filters(q=q, source=source, after=after, before=before, page=page, per_page=per_page).normalized()


def _query(f: Filters, page: int) -> str:
    """The list URL's query string for ``page`` with the same filters (for paging links)."""
    params = {k: v for k, v in (("q", f.q), ("source", f.source), ("after", f.after), ("before", f.before)) if v}
    if page > 1:
        params["page"] = str(page)
    if f.per_page != PER_PAGE:
        params["per_page"] = str(f.per_page)
    return urlencode(params)


def create_app(deduper: Deduper, admin_token: str | None = None, poll_seconds: float = 3.0) -> FastAPI:
    """Build the dashboard over any Deduper (in-process or Redis).

    ``admin_token`` enables the write API (ingest, delete); without it the
    dashboard is read-only, so a public viewer cannot change the index.
    ``poll_seconds`` is how often the list page asks for news.
    """
    dash = Dashboard(deduper)
    templates = _templates()
    app = FastAPI(
        title="dedup dashboard",
        description="Story clusters of near-duplicate news and what each variant adds.",
        version="0.1.0",
    )
    app.state.dashboard = dash

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
        return templates.TemplateResponse(request, name, ctx, status_code=status)

    @app.exception_handler(NotFound)
    async def not_found(request: Request, exc: NotFound) -> Any:
        what = exc.args[0] if exc.args else ""
        if request.url.path.startswith("/api/"):
            return JSONResponse({"detail": f"not found: {what}"}, status_code=404)
        return page(request, "error.html", 404, title="Not found", message=f"Nothing is stored under {what!r}.")

    # -- JSON API -------------------------------------------------------------
    @app.get("/api/stories", tags=["stories"])
    def api_stories(
        q: str = "", source: str = "", after: str = "", before: str = "",
        page: int = Query(1, ge=1), per_page: int = Query(PER_PAGE, ge=1, le=200),
        since: str = Query("", description="version from the previous answer; unchanged lists answer without stories"),
    ) -> dict[str, Any]:
        """Stories, most recently active first; ``changed`` is false when ``since`` is still current."""
        if since:
            current = dash.version()
            if current == since:
                return {"changed": False, "version": current}
        result = dash.list_stories(_filters(q, source, after, before, page, per_page))
        out = to_json(result)
        out["changed"] = True
        return out

    @app.get("/api/stories/events", tags=["stories"])
    async def api_story_events(
        request: Request, q: str = "", source: str = "", after: str = "", before: str = "",
        page: int = Query(1, ge=1), per_page: int = Query(PER_PAGE, ge=1, le=200),
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
        it has).  Pages fall back to polling where EventSource fails.
        """
        f = _filters(q, source, after, before, page, per_page)
        shown = last_event_id or since
        deadline = time.monotonic() + max_seconds

        async def stream() -> AsyncIterator[str]:
            nonlocal shown
            yield f"retry: {int(poll_seconds * 1000)}\n\n"
            quiet = 0.0
            while True:
                current = await run_in_threadpool(dash.version)
                if current != shown:
                    out = to_json(await run_in_threadpool(dash.list_stories, f))
                    out["changed"] = True
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

    @app.get("/api/stories/{story_id}", tags=["stories"])
    def api_story(story_id: str) -> dict[str, Any]:
        """A story's variants ranked by unique information, shared core and timeline."""
        return to_json(dash.story(story_id))

    @app.get("/api/stories/{story_id}/compare", tags=["stories"])
    def api_compare(story_id: str, a: str, b: str) -> dict[str, Any]:
        """Two variants aligned sentence by sentence."""
        return to_json(dash.compare(story_id, a, b))

    @app.get("/api/articles/{article_id}", tags=["articles"])
    def api_article(article_id: str) -> dict[str, str]:
        return dash.article(article_id)

    @app.post("/api/articles", tags=["admin"], status_code=201, dependencies=[Depends(require_admin)])
    async def api_ingest(request: Request) -> dict[str, Any]:
        """Cluster one article (JSON object with id, text, title, source, published, url)."""
        try:
            obj = json.loads(await request.body())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise HTTPException(400, f"body is not JSON: {exc}") from exc
        try:
            assignment = await run_in_threadpool(dash.ingest, obj)
        except BadInput as exc:
            raise HTTPException(422, {"where": exc.where, "reason": exc.reason, "fix": exc.fix}) from exc
        return {"id": assignment.article_id, "story": assignment.story, "action": assignment.action,
                "merged": assignment.merged}

    @app.delete("/api/articles/{article_id}", tags=["admin"], dependencies=[Depends(require_admin)])
    def api_delete(article_id: str) -> dict[str, Any]:
        """Remove an article (kill or retraction); returns the stories its old story became."""
        return {"deleted": article_id, "stories": dash.delete(article_id)}

    # -- HTML pages -----------------------------------------------------------
    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def list_page(
        request: Request, q: str = "", source: str = "", after: str = "", before: str = "",
        page_no: int = Query(1, ge=1, alias="page"), per_page: int = Query(PER_PAGE, ge=1, le=200),
    ) -> HTMLResponse:
        f = _filters(q, source, after, before, page_no, per_page)
        result = dash.list_stories(f)
        api_query = _query(f, result.page)
        return page(
            request, "list.html", result=result, f=f, sources=dash.sources(),
            prev_qs=_query(f, result.page - 1) if result.page > 1 else None,
            next_qs=_query(f, result.page + 1) if result.page < result.pages else None,
            api_query=api_query, poll_ms=int(poll_seconds * 1000),
        )

    @app.get("/story/{story_id}", response_class=HTMLResponse, include_in_schema=False)
    def story_page(request: Request, story_id: str) -> HTMLResponse:
        return page(request, "story.html", s=dash.story(story_id))

    @app.get("/story/{story_id}/compare", response_class=HTMLResponse, include_in_schema=False)
    def compare_page(request: Request, story_id: str, a: str = "", b: str = "") -> HTMLResponse:
        s = dash.story(story_id)
        ids = [v.id for v in s.variants]
        a = a or (ids[0] if ids else "")
        b = b or (ids[1] if len(ids) > 1 else a)
        return page(request, "compare.html", s=s, c=dash.compare(story_id, a, b), ids=ids)

    @app.get("/article/{article_id}", response_class=HTMLResponse, include_in_schema=False)
    def article_page(request: Request, article_id: str) -> HTMLResponse:
        return page(request, "article.html", a=dash.article(article_id))

    return app


__all__ = ["create_app"]
