"""A dashboard served from a background thread, for browser tests, screenshots and benchmarks.

Real browsers need a real socket; running uvicorn in a thread of the test
process lets a test ingest through the same Deduper the server reads.
"""

from __future__ import annotations

import socket
import threading
import time
from types import TracebackType

import uvicorn

from ..service import Deduper
from .app import create_app


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LiveServer:
    """``with LiveServer(dd) as srv: browser.goto(srv.url)`` -- started and stopped cleanly."""

    def __init__(self, deduper: Deduper, admin_token: str | None = None, poll_seconds: float = 3.0) -> None:
        self.app = create_app(deduper, admin_token=admin_token, poll_seconds=poll_seconds)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        # open event streams (live list pages) must not hold up a stop
        config = uvicorn.Config(self.app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="off",
                                timeout_graceful_shutdown=2)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name=f"dashboard:{self.port}", daemon=True)

    def __enter__(self) -> "LiveServer":
        self.thread.start()
        deadline = time.monotonic() + 15
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"dashboard did not start on port {self.port}")
            time.sleep(0.02)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
