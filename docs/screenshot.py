"""Regenerate docs/dashboard.png: the seed story {000, 001} in the dashboard, shot by Debian's Chromium.

Run: PYTHONPATH=. python docs/screenshot.py   (never downloads a browser)
"""

from __future__ import annotations

import sys
from pathlib import Path

from playwright.sync_api import sync_playwright

from dedup.readers import read_paths
from dedup.service import Deduper
from dedup.web.testing import LiveServer

ROOT = Path(__file__).resolve().parent.parent
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]


def main(out: Path = ROOT / "docs" / "dashboard.png") -> None:
    dd = Deduper()
    list(dd.add_many(read_paths(sorted(str(p) for p in (ROOT / "seeds").glob("*.txt")))))
    story = dd.story_of("000_e9c91ff9978c02d9")
    with LiveServer(dd) as srv, sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
        page = browser.new_page(viewport={"width": 1200, "height": 1400})
        page.goto(f"{srv.url}/story/{story}")
        page.screenshot(path=str(out))
        browser.close()
    print(out, file=sys.stderr)


if __name__ == "__main__":
    main()
