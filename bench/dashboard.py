"""Server-side latency of the story list and story page with many synthetic stories.

Why: the issue asks for list and story pages under 200 ms with 100k articles
in 10k stories in the shared Redis index.  That holds only if a list request
neither ranks stories nor makes one round trip per story, so this measures
exactly those requests: the view functions (what the JSON API returns) and
the full HTML pages through the ASGI app in process (routing, templates,
the filter menu), each ``--runs`` times, and prints p50/p99.

    PYTHONPATH=. python bench/dashboard.py --stories 2000                 # in-process index
    PYTHONPATH=. python bench/dashboard.py --redis                        # 100k articles / 10k stories
    PYTHONPATH=. python bench/dashboard.py --redis --stories 2000 --per-story 10

``--redis`` starts its own throwaway redis-server on a free port in a temp
dir (never 6379) and stops it at the end.
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

from dedup.records import Article, Entry, Signature
from dedup.service import Deduper
from dedup.stories import assign
from dedup.text import line_hashes, normalize
from dedup.web.views import Dashboard, Filters

WORDS = [f"w{i}" for i in range(5000)]
START = dt.datetime(2024, 1, 1, 6, 0, tzinfo=dt.timezone.utc)


def synthetic(n: int, seed: int = 7) -> Deduper:
    """``n`` unrelated one- or two-article stories (every fifth has a rewrite), in process."""
    rng = random.Random(seed)
    dd = Deduper()
    for i in range(n):
        text = ". ".join(" ".join(rng.choices(WORDS, k=12)) for _ in range(6)) + "."
        dd.add(Article(f"s{i}", text, title=f"Story {i}", source=f"src{i % 7}"))
        if i % 5 == 0:
            dd.add(Article(f"s{i}b", text + " One added detail sentence here for the rewrite.", source="rewrite"))
    return dd


def story_articles(stories: int, per_story: int, seed: int = 7) -> Iterator[Article]:
    """``stories`` unrelated stories of ``per_story`` variants each (about; sizes vary 1..2x-1).

    A variant is the story's base text with one sentence of its own added,
    so variants cluster together and stories never do.  Stories are spread
    over 120 days, a few per hour, so publication windows matter as in a feed.
    """
    rng = random.Random(seed)

    def words(k: int) -> str:
        # a vocabulary of a million made-up words: unrelated stories share almost none, as in real news,
        # so LSH finds a story's own variants and not hundreds of random candidates
        return " ".join(f"q{rng.randrange(1_000_000)}" for _ in range(k))

    for i in range(stories):
        base = [words(12) for _ in range(7)]
        when = START + dt.timedelta(minutes=17 * i)
        size = rng.randint(1, 2 * per_story - 1)
        for j in range(size):
            extra = words(10)
            text = ". ".join(base + [extra]) + "."
            yield Article(f"s{i}-{j}", text, title=f"Story {i} variant {j} {base[0][:20]}",
                          source=f"src{(i + j) % 37}", published=when + dt.timedelta(minutes=9 * j))


def load(dd: Deduper, articles: Iterator[Article], sign_all: bool, t0: float, chunk: int = 256) -> None:
    """Cluster the synthetic articles into ``dd``'s index through the batch path (``ingest_many``).

    Signing (MinHash and friends) is most of the load time, and it is not
    what this bench measures; unless ``sign_all``, the variants of a story
    share its first variant's signature while keeping their own text,
    title, source, date and sentence hashes -- everything the list and
    story pages read -- so the index and the pages do the same work.
    """
    shared: dict[str, Signature] = {}
    batch: list[Entry] = []
    done = 0

    def flush() -> None:
        nonlocal done
        for result in dd.index.ingest_many(batch, fallback=lambda e: assign(dd.index, e, dd.settings)):
            if isinstance(result, Exception):
                sys.exit(f"load failed: {result}")
        done += len(batch)
        if done // 10_000 != (done - len(batch)) // 10_000:
            print(f"  {done:,} articles, {time.perf_counter() - t0:.0f}s", flush=True)
        batch.clear()

    for art in articles:
        story = art.id.rsplit("-", 1)[0]
        if sign_all or story not in shared:
            entry = dd.prepare(art)
            shared = {story: entry.signature}  # stories arrive one after the other
        else:
            clean, _ = normalize(art.text, art.title)
            entry = Entry(art.id, art.title, art.text, art.source, art.published.isoformat() if art.published else "",
                          art.url, shared[story], line_hashes(clean))
        batch.append(entry)
        if len(batch) >= chunk:
            flush()
    if batch:
        flush()


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


def timed(fn: Callable[[], object], runs: int) -> tuple[float, float, float]:
    """(first call, p50, p99) in ms: the first call fills the caches and is reported alone;
    the percentiles are of the ``runs`` calls after it."""
    samples = []
    for _ in range(runs + 1):
        t = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t) * 1000)
    cold = samples.pop(0)
    samples.sort()
    return cold, statistics.median(samples), samples[min(len(samples) - 1, int(len(samples) * 0.99))]


def measure(dash: Dashboard, runs: int, sid: str, query: str) -> None:
    from fastapi.testclient import TestClient

    from dedup.web import create_app

    pages = max(1, -(-len(dash.dd.index.story_ids()) // 20))
    deep = max(1, pages // 2)
    client = TestClient(create_app(dash.dd))

    def get(path: str, **params: object) -> Callable[[], object]:
        def go() -> None:
            r = client.get(path, params=params)
            assert r.status_code == 200, (path, r.status_code)
        return go

    cases: list[tuple[str, Callable[[], object]]] = [
        ("list page 1", lambda: dash.list_stories(Filters())),
        (f"list page {deep}", lambda: dash.list_stories(Filters(page=deep))),
        ("list search", lambda: dash.list_stories(Filters(q=query))),
        ("list source", lambda: dash.list_stories(Filters(source="src5"))),
        ("list since", lambda: dash.version()),
        ("story page", lambda: dash.story(sid)),
        ("HTML /", get("/")),
        (f"HTML /?page={deep}", get("/", page=deep)),
        ("HTML /?q=", get("/", q=query)),
        ("HTML /story", get(f"/story/{sid}")),
        ("HTML /?sort=size", get("/", sort="size")),
        ("HTML /?min_size=1", get("/", min_size=1)),
        ("HTML /event", get("/event", story=sid, min_size=1)),
    ]
    print(f"{'request':18s} {'first':>9s} {'p50':>9s} {'p99':>9s}   (ms; p50/p99 of {runs} runs after the first)")
    for name, fn in cases:
        cold, p50, p99 = timed(fn, runs)
        print(f"{name:18s} {cold:9.1f} {p50:9.1f} {p99:9.1f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--stories", type=int, default=None, help="default 2000 in process, 10000 with --redis")
    ap.add_argument("--per-story", type=int, default=10, help="mean variants per story (--redis)")
    ap.add_argument("--runs", type=int, default=60)
    ap.add_argument("--redis", action="store_true", help="load into a throwaway redis-server and read from it")
    ap.add_argument("--sign-all", action="store_true",
                    help="sign every variant (slow: ~70 articles/s on a busy 2-core machine) instead of one per story")
    args = ap.parse_args()
    t = time.perf_counter()
    if not args.redis:
        dash = Dashboard(synthetic(args.stories or 2000))
        print(f"ingested {len(dash.dd.index):,} articles in {time.perf_counter() - t:.1f}s (in process)")
        measure(dash, args.runs, dash.dd.story_of("s0") or "", "w42 w17")
        return
    workdir = tempfile.mkdtemp(prefix="dedup-bench-")
    proc, url = start_redis(workdir)
    try:
        dd = Deduper(url=url)
        load(dd, story_articles(args.stories or 10_000, args.per_story), args.sign_all, t)
        print(f"loaded {len(dd.index):,} articles into {len(dd.index.story_ids()):,} stories "
              f"in {time.perf_counter() - t:.0f}s ({url})")
        members = dd.index.members_many(dd.index.story_ids())
        sizes = [len(m) for m in members.values()]
        biggest = max(members, key=lambda s: len(members[s]))
        print(f"story sizes: median {statistics.median(sizes):.0f}, max {max(sizes)}; story page times {biggest}")
        measure(Dashboard(dd), args.runs, biggest, "q4242")
        dd.close()
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
