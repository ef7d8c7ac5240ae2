"""Server-side latency of the dashboard's list, story and event pages with many synthetic stories.

Why: the bar is p99 under 100 ms for the list, a story page and an event page with 100k articles in 10k
stories in the shared Redis index.  That holds only if a list request neither ranks stories nor makes one
round trip per story, so this measures exactly those requests: the full HTML pages through the ASGI app in
process (routing, views, templates, the filter menu) and the view functions under them, ``--runs`` times
each after a first request that fills the caches, and prints p50/p99.  The app is warmed up first as
``dedup serve`` warms itself (:func:`dedup.web.serve.warm_up`).  Every article is signed (no
signature shared between variants) and loaded through the bulk ingest path (``Deduper.add_many``); the
load time is printed.

    PYTHONPATH=. python bench/dashboard.py --redis                        # 100k articles / 10k stories
    PYTHONPATH=. python bench/dashboard.py --stories 2000                 # in-process index
    PYTHONPATH=. python bench/dashboard.py --redis --stories 2000 --per-story 10
    PYTHONPATH=. python bench/dashboard.py --redis --event-size 4         # stories in events of 4

``--redis`` starts its own throwaway redis-server on a free port in a temp dir (never 6379) and stops it
at the end.
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Callable, Iterator

from fastapi.testclient import TestClient

from dedup.records import Article
from dedup.service import Deduper
from dedup.web import create_app
from dedup.web.serve import warm_up
from dedup.web.views import Dashboard, Filters, event_url, similarity_url, story_url

START = dt.datetime(2024, 1, 1, 6, 0, tzinfo=dt.timezone.utc)
#: a few outlets are news agencies, so the list's wire counts have something to count
SOURCES = ["Reuters", "AP", "AFP", "PA"] + [f"src{i}" for i in range(33)]


def story_articles(stories: int, per_story: int, event_size: int = 1, seed: int = 7) -> Iterator[Article]:
    """``stories`` stories of ``per_story`` variants each (about; sizes vary 1..2x-1), in events of
    ``event_size`` consecutive stories.

    A variant is the story's base text with one sentence of its own added,
    so variants cluster together and stories never do.  The stories of one
    event write half of each sentence with the event's own 30 words, in an
    order of their own: close word vectors and shared names (every made-up
    word holds figures), no shared text, as independent reports of one event.
    Stories are spread over 120 days, a few per hour, so publication windows
    matter as in a feed.
    """
    rng = random.Random(seed)

    def words(k: int) -> str:
        # a vocabulary of a million made-up words: unrelated stories share almost none, as in real news,
        # so LSH finds a story's own variants and not hundreds of random candidates
        return " ".join(f"q{rng.randrange(1_000_000)}" for _ in range(k))

    event: list[str] = []
    for i in range(stories):
        if i % event_size == 0:
            event = words(30).split()
        if event_size > 1:
            base = [" ".join(rng.sample(event, 6)) + " " + words(6) for _ in range(7)]
        else:
            base = [words(12) for _ in range(7)]
        when = START + dt.timedelta(minutes=17 * i)
        size = rng.randint(1, 2 * per_story - 1)
        for j in range(size):
            extra = words(10)
            text = ". ".join(base + [extra]) + "."
            yield Article(f"s{i}-{j}", text, title=f"Story {i} variant {j} {base[0][:20]}",
                          source=SOURCES[(i + j) % len(SOURCES)], published=when + dt.timedelta(minutes=9 * j))


def load(dd: Deduper, articles: Iterator[Article], t0: float) -> int:
    """Cluster the articles into ``dd``'s index through the bulk path, each one signed; returns how many."""
    done = 0
    for outcome in dd.add_many(articles):
        if outcome.error is not None:
            sys.exit(f"load failed: {outcome.error}")
        done += 1
        if done % 10_000 == 0:
            print(f"  {done:,} articles, {time.perf_counter() - t0:.0f}s", flush=True)
    return done


def start_redis(workdir: str) -> tuple[subprocess.Popen, str]:
    """A redis-server of our own on a free port (the bench flushes nothing it does not own)."""
    exe = shutil.which("redis-server")
    if exe is None:
        sys.exit("redis-server is not installed: apt-get install redis-server")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([exe, "--port", str(port), "--bind", "127.0.0.1", "--dir", workdir, "--save", "",
                             "--appendonly", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(200):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return proc, f"redis://127.0.0.1:{port}/0"
        except OSError:
            time.sleep(0.05)
    proc.kill()
    sys.exit("redis-server did not start")


def percentiles(samples: list[float]) -> tuple[float, float]:
    """(p50, p99) of ``samples``, nearest rank."""
    samples = sorted(samples)
    return statistics.median(samples), samples[min(len(samples) - 1, int(len(samples) * 0.99))]


def timed(fn: Callable[[], object], runs: int) -> tuple[float, float, float]:
    """(first call, p50, p99) in ms: the first call fills the caches and is reported alone;
    the percentiles are of the ``runs`` calls after it."""
    samples = []
    for _ in range(runs + 1):
        t = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t) * 1000)
    cold = samples.pop(0)
    return (cold, *percentiles(samples))


def measure(dd: Deduper, runs: int, sid: str, query: str) -> None:
    dash = Dashboard(dd)
    app = create_app(dd)
    client = TestClient(app)
    t = time.perf_counter()
    warm_up(app.state.dashboard)  # as `dedup serve` does at start-up, before its first request here
    print(f"server warm-up (every story's facts read, then the heap frozen): {time.perf_counter() - t:.1f}s",
          flush=True)
    pages = max(1, -(-len(dd.story_versions()) // 20))
    deep = max(1, pages // 2)

    def get(path: str) -> Callable[[], object]:
        def go() -> None:
            r = client.get(path)
            assert r.status_code == 200, (path, r.status_code)
        return go

    cases: list[tuple[str, Callable[[], object]]] = [
        ("list page 1 (view)", lambda: dash.list_stories(Filters())),
        ("list search (view)", lambda: dash.list_stories(Filters(q=query))),
        ("story page (view)", lambda: dash.story(sid)),
        ("HTML /", get("/")),
        (f"HTML /?page={deep}", get(f"/?page={deep}")),
        ("HTML /?sort=size", get("/?sort=size")),
        ("HTML /?q=", get(f"/?q={query}")),
        ("HTML /story", get(story_url(sid))),
        ("HTML /event", get(event_url(sid, "min_size=1"))),
    ]
    print(f"{'request':20s} {'first':>9s} {'p50':>9s} {'p99':>9s}   (ms; p50/p99 of {runs} runs after the first)")
    for name, fn in cases:
        cold, p50, p99 = timed(fn, runs)
        print(f"{name:20s} {cold:9.1f} {p50:9.1f} {p99:9.1f}", flush=True)
    # Story and event pages opened once each, the way editors spread over the list: nothing about the
    # story is cached yet (its ranking, similarity column and event are computed in the request).
    first_page = [s.id for s in dash.list_stories(Filters(sort="size", per_page=200)).stories]
    rng = random.Random(1)
    spread = rng.sample(first_page, min(len(first_page), runs))
    # the story page's similarity column, asked for by its script right after a first view
    for name, url in (("HTML /story, each once", story_url), ("API similarity, once", similarity_url),
                      ("HTML /event, each once", lambda s: event_url(s))):
        samples = []
        for s in spread:
            t = time.perf_counter()
            get(url(s))()
            samples.append((time.perf_counter() - t) * 1000)
        p50, p99 = percentiles(samples)
        sizes = [len(dd.members(x)) for x in spread]
        print(f"{name:22s} {'':>7s} {p50:9.1f} {p99:9.1f}   ({len(samples)} different stories, "
              f"{min(sizes)}-{max(sizes)} articles)", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--stories", type=int, default=None, help="default 2000 in process, 10000 with --redis")
    ap.add_argument("--per-story", type=int, default=10, help="mean variants per story")
    ap.add_argument("--event-size", type=int, default=1, help="stories per event (1: every story its own event)")
    ap.add_argument("--runs", type=int, default=200, help="requests per case after the first")
    ap.add_argument("--redis", action="store_true", help="load into a throwaway redis-server and read from it")
    args = ap.parse_args()
    stories = args.stories or (10_000 if args.redis else 2_000)
    workdir = tempfile.mkdtemp(prefix="dedup-bench-") if args.redis else ""
    proc, url = start_redis(workdir) if args.redis else (None, None)
    try:
        dd = Deduper(url=url) if url else Deduper()
        t = time.perf_counter()
        n = load(dd, story_articles(stories, args.per_story, args.event_size), t)
        print(f"loaded {n:,} articles (each signed, bulk ingest) into {len(dd.story_versions()):,} stories "
              f"in {time.perf_counter() - t:.0f}s ({url or 'in process'})", flush=True)
        sizes = dd.story_sizes()
        biggest = max(sizes, key=lambda sid: (sizes[sid], sid))
        print(f"story sizes: median {statistics.median(sizes.values()):.0f}, max {sizes[biggest]}; "
              f"the repeated story and event pages show {biggest}", flush=True)
        if args.event_size > 1:
            events = dd.events()
            print(f"events: {len(set(events.values())):,} of {len(events):,} stories; "
                  f"{biggest}'s event holds {len(dd.event_of(biggest)[1])} stories", flush=True)
        measure(dd, args.runs, biggest, "q4242")
        dd.close()
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=30)
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
