"""Regenerate the dashboard screenshots in docs/ from meter-dev + bbc-distractors, shot by Debian's Chromium.

dashboard-list.png (the list, biggest stories first), dashboard-story.png (a 25-variant story) and
dashboard-event.png (full coverage of an event).

Run: PYTHONPATH=. python docs/screenshot.py [DATA_DIR]   (never downloads a browser; DATA_DIR defaults to
../shared/data beside the repository, or $DEDUP_DATA_DIR)
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from urllib.parse import quote

from playwright.sync_api import sync_playwright

from dedup.readers import read_paths
from dedup.service import Deduper
from dedup.web.testing import LiveServer

ROOT = Path(__file__).resolve().parent.parent
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]
STORY = "PA/courts/27.09.99/pinochet/pinochet1"  # 25 variants from PA and the papers


def main(data: Path, out: Path = ROOT / "docs") -> None:
    dd = Deduper()
    list(dd.add_many(read_paths([str(data / "meter-dev.jsonl"), str(data / "bbc-distractors.jsonl")])))
    story = dd.story_of(STORY)
    if story is None:
        raise SystemExit(f"{STORY} is not in {data}: point DATA_DIR at the folder holding meter-dev.jsonl")
    with LiveServer(dd) as srv, sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(f"{srv.url}/?sort=size")
        page.screenshot(path=str(out / "dashboard-list.png"))
        page.goto(f"{srv.url}/story/{quote(story, safe='')}")
        # the similarity column of a story seen for the first time is filled by the page's script
        page.wait_for_selector("table.variants[data-filled], table.variants:not([data-similarity])")
        page.screenshot(path=str(out / "dashboard-story.png"))
        page.goto(f"{srv.url}/?min_size=1")
        page.locator("#stories a", has_text="related").first.click()
        page.wait_for_load_state()
        page.screenshot(path=str(out / "dashboard-event.png"))
        browser.close()
    print(*(out / f"dashboard-{n}.png" for n in ("list", "story", "event")), file=sys.stderr)


if __name__ == "__main__":
    default = Path(os.environ.get("DEDUP_DATA_DIR", ROOT.parent / "shared" / "data"))
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else default)
