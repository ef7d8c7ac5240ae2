"""Server-side latency of the story list and story page with many synthetic stories (in-process).

Why: the list must stay fast at 10k stories, which holds only if a page
ranks just its own stories.  Run: PYTHONPATH=. python bench/dashboard.py --stories 10000
"""

from __future__ import annotations

import argparse
import random
import statistics
import time

from dedup.records import Article
from dedup.service import Deduper
from dedup.web.views import Dashboard, Filters

WORDS = [f"w{i}" for i in range(5000)]


def synthetic(n: int, seed: int = 7) -> Deduper:
    """``n`` unrelated one- or two-article stories (every fifth has a rewrite)."""
    rng = random.Random(seed)
    dd = Deduper()
    for i in range(n):
        text = ". ".join(" ".join(rng.choices(WORDS, k=12)) for _ in range(6)) + "."
        dd.add(Article(f"s{i}", text, title=f"Story {i}", source=f"src{i % 7}"))
        if i % 5 == 0:
            dd.add(Article(f"s{i}b", text + " One added detail sentence here for the rewrite.", source="rewrite"))
    return dd


def timed(fn, runs: int) -> tuple[float, float]:
    samples = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t) * 1000)
    samples.sort()
    return statistics.median(samples), samples[min(len(samples) - 1, int(len(samples) * 0.99))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--stories", type=int, default=2000)
    ap.add_argument("--runs", type=int, default=30)
    args = ap.parse_args()
    t = time.perf_counter()
    dash = Dashboard(synthetic(args.stories))
    print(f"ingested {len(dash.dd.index):,} articles in {time.perf_counter() - t:.1f}s")
    sid = dash.dd.story_of("s0")
    for name, fn in [
        ("list page 1", lambda: dash.list_stories(Filters())),
        ("list page 50", lambda: dash.list_stories(Filters(page=50))),
        ("list search", lambda: dash.list_stories(Filters(q="w42 w17"))),
        ("story page", lambda: dash.story(sid)),
    ]:
        p50, p99 = timed(fn, args.runs)
        print(f"{name:14s} p50 {p50:8.1f} ms   p99 {p99:8.1f} ms")


if __name__ == "__main__":
    main()
