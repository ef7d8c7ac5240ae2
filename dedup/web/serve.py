"""Bodies of ``dedup serve`` and ``dedup cluster --serve``; cli.py only registers them.

Kept here so the CLI module stays free of web imports: FastAPI and uvicorn
are loaded only when someone asks for the dashboard.
"""

from __future__ import annotations

import gc
import threading
from typing import TYPE_CHECKING, Iterable

import click

from ..console import run_batch, show_progress
from ..readers import read_paths
from ..service import Deduper

if TYPE_CHECKING:
    from .views import Dashboard


def warm_up(dashboard: Dashboard) -> int:
    """What the server does once it starts, in the background: read every story's filter facts (the first
    search would otherwise read all articles), then freeze what the process holds by then.  The index's
    caches and the facts live as long as the server; left to the cyclic collector, every full collection
    walks all of them inside whichever request set it off (the dashboard's p99, docs/benchmarks.md).
    Returns how many stories were read."""
    stories = dashboard.warm()
    gc.collect()
    gc.freeze()
    return stories


def run(dd: Deduper, host: str, port: int, admin_token: str | None) -> None:
    """Serve the dashboard over ``dd`` until interrupted."""
    import uvicorn

    from .app import create_app

    mode = "admin API enabled" if admin_token else "read-only (no --admin-token)"
    click.echo(f"dashboard on http://{host}:{port}/  ({dd.article_count():,} articles; {mode})", err=True)
    app = create_app(dd, admin_token=admin_token)
    # search facts are read in the background so the first search does not pay for all articles
    threading.Thread(target=warm_up, args=(app.state.dashboard,), name="dashboard-warm", daemon=True).start()
    uvicorn.run(app, host=host, port=port, log_level="warning", timeout_graceful_shutdown=5)  # open event streams


def serve_command(dd: Deduper, paths: Iterable[str], host: str, port: int, admin_token: str | None,
                  progress: bool | None = None) -> None:
    """Optionally preload ``paths`` into the index, then serve it."""
    paths = list(paths)
    if paths:
        outcomes = run_batch(dd, read_paths(paths), show_progress(progress))
        bad = sum(1 for o in outcomes if o.error is not None)
        click.echo(f"loaded {len(outcomes) - bad:,} article(s), {bad} rejected", err=True)
    run(dd, host, port, admin_token)
