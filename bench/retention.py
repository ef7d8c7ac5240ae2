"""Benchmark: a retention pass, batched (what ``--retain-days`` does) against article by article.

A retention pass runs inside the ingest of the first article of each new
publication day, so that ingest waits for the whole pass.  This streams
``--days`` days of ``--per-day`` articles (meter-dev + bbc-distractors from
../shared/data, then synthetic ones recombined from their sentences) into
two namespaces of one throwaway redis-server (never 6379):

* ``batch``: ``retain_days=--retain``; each new day's pass deletes its old
  articles 64 to a script call and re-splits each story they leave once
  (``RedisIndex.expire``).  Timed: the ingest that ran the pass.
* ``single``: no retention setting; at the same points the same old
  articles (``dated_before``) are deleted one at a time, each followed by
  the re-split of its story (``dedup.stories.remove``, what ``dedup delete``
  does).  Timed: those deletes.

Prints each pass's seconds both ways, their medians and ratio, and whether
the two namespaces end with the same stories.

    python bench/retention.py --per-day 500 --days 8 --retain 3
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import statistics
import sys
import tempfile
import time
from pathlib import Path

import redis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from redis_index import load_articles, load_scripts, start_server  # noqa: E402

from dedup.index.redis.slot import RedisIndex  # noqa: E402
from dedup.service import Deduper  # noqa: E402
from dedup.settings import Settings  # noqa: E402
from dedup.stories import assign, remove  # noqa: E402

START = dt.datetime(2024, 1, 1, 12, tzinfo=dt.timezone.utc)


def partition(idx: RedisIndex, ids: list[str]) -> set[frozenset[str]]:
    groups: dict[str, set[str]] = {}
    for aid, story in idx.story_of(ids).items():
        groups.setdefault(story, set()).add(aid)
    return {frozenset(g) for g in groups.values()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--per-day", type=int, default=500, help="articles published per day")
    ap.add_argument("--days", type=int, default=8, help="publication days streamed")
    ap.add_argument("--retain", type=int, default=3, help="retain_days of the batched namespace")
    args = ap.parse_args()
    settings = Settings()
    dd = Deduper(settings)
    t = time.perf_counter()
    entries = [dd.prepare(dataclasses.replace(a, published=START + dt.timedelta(days=n // args.per_day)))
               for n, a in enumerate(load_articles(args.per_day * args.days))]
    print(f"read and signed {len(entries)} articles in {time.perf_counter() - t:.1f}s (not part of the timings)")
    batched, single = [], []
    with tempfile.TemporaryDirectory() as tmp:
        proc, port = start_server(tmp)
        try:
            load_scripts(redis.Redis(port=port))
            url = f"redis://127.0.0.1:{port}/0"
            keep = dataclasses.replace(settings, retain_days=args.retain)
            with RedisIndex(keep, url=url, namespace="batch") as a, RedisIndex(settings, url=url, namespace="single") as b:
                day = None
                for e in entries:
                    if e.signature.day != day and day is not None:
                        # the same cutoff the batched pass uses: the newest stored day (this one) - retain
                        cutoff = e.signature.day - args.retain
                        old = b.older_than(cutoff, b.day_counts()).ids
                        if old:
                            t = time.perf_counter()
                            for aid in old:
                                remove(b, aid, settings)
                            single.append(time.perf_counter() - t)
                            t = time.perf_counter()
                            assign(a, e, keep)  # ingests it, then runs the pass
                            batched.append(time.perf_counter() - t)
                            print(f"day {e.signature.day - entries[0].signature.day}: {len(old)} old articles, "
                                  f"batched {batched[-1]:.2f} s (the ingest that ran the pass), "
                                  f"one at a time {single[-1]:.2f} s", flush=True)
                            assign(b, e, settings)
                            day = e.signature.day
                            continue
                    day = e.signature.day
                    assign(a, e, keep)
                    assign(b, e, settings)
                ids = [e.id for e in entries]
                same = sorted(i for i in ids if i in a) == sorted(i for i in ids if i in b)
                same = same and partition(a, [i for i in ids if i in a]) == partition(b, [i for i in ids if i in b])
        finally:
            proc.terminate()
            proc.wait()
    if not batched:
        sys.exit("no retention pass ran: stream more days than --retain")
    print(f"\n{len(batched)} passes; medians: batched {statistics.median(batched):.2f} s, one at a time "
          f"{statistics.median(single):.2f} s ({statistics.median(single) / statistics.median(batched):.1f}x); "
          f"worst: {max(batched):.2f} s vs {max(single):.2f} s; same articles and stories at the end: {same}")


if __name__ == "__main__":
    main()
