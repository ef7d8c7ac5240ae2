"""Ingest benchmark: dedup's in-process pipeline against a plain datasketch MinHashLSH pipeline.

Both pipelines see the same articles in the same order and do the whole
per-article job a newsroom needs at ingest: signature, candidate query,
insert and story assignment (union-find for datasketch; ranking is lazy in
both).  ``ours`` runs the default settings, which also link each story into
its event as articles arrive (``dedup.events``); ``ours-stories`` is the
same with ``--no-events``, the one level datasketch's pipeline has.  Each
run happens in its own subprocess so peak memory (max RSS) is per pipeline.
Repeats are interleaved (datasketch, ours, ours-stories, ours --jobs 2,
datasketch, ...) so a change of machine load hits all of them; figures are
medians over ``--repeats`` runs, the ratio is ours / datasketch's articles
per second, and the ratio of each repeat is printed too.

Corpora:
* ``labelled``: meter-dev + bbc-distractors from ../shared/data (read at run
  time, never copied), scored against METER's story labels;
* ``synthetic``: N articles made by recombining sentences of that data into
  stories with rewritten variants (sentences dropped, paragraphs reordered,
  local sentences and boilerplate added), scored against the generator's
  own story labels.

Usage:  python bench/ingest.py [--n 100000] [--repeats 3] [--skip-synthetic] [--skip-jobs] [--skip-stories]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(os.environ.get("DEDUP_DATA_DIR", ROOT.parent / "shared" / "data"))
BOILER = [
    "Copyright 2021 The Associated Press. All rights reserved.",
    "This is an archived article and the information in the article may be outdated.",
    "Trending Stories",
]


def load_labelled() -> list[dict]:
    rows = []
    for name in ("meter-dev.jsonl", "bbc-distractors.jsonl"):
        path = DATA / name
        if not path.exists():
            sys.exit(f"missing {path}: the benchmark reads the evaluation data from ../shared/data")
        rows += [json.loads(line) for line in path.open()]
    return rows


def synthetic(n: int, seed: int = 7) -> list[dict]:
    """N articles in stories of 1-6 variants over 60 days.

    Sentence *shapes* come from the labelled data, but every story gets its
    own words: each content word of a template sentence is replaced by a word
    of the story's own topic vocabulary (names and terms drawn from an English
    word list) or of general English.  So unrelated stories do not share
    sentences (as unrelated real stories do not), while a story's variants
    share most of theirs: sentences dropped and reordered, local sentences and
    boilerplate added, published the same day or the next.
    """
    import datetime as dt

    import wordfreq

    rnd = random.Random(seed)
    templates = []
    for r in load_labelled():
        templates += [s.split() for s in re.split(r"(?<=[.!?])\s+", r["text"].replace("\n", " ")) if len(s.split()) >= 6]
    vocab = [w for w in wordfreq.top_n_list("en", 60000)[2000:] if w.isalpha()]
    general = [w for w in wordfreq.top_n_list("en", 2000) if w.isalpha()]

    def sentence(topic: list[str]) -> str:
        words = []
        for w in rnd.choice(templates):
            if len(w) > 3 and w[0].isalpha():
                pick = rnd.choice(topic) if rnd.random() < 0.6 else rnd.choice(general)
                words.append(pick.capitalize() if w[0].isupper() else pick)
            else:
                words.append(w)
        return " ".join(words)

    start = dt.date(2021, 1, 1)
    rows: list[dict] = []
    story = 0
    while len(rows) < n:
        story += 1
        topic = rnd.sample(vocab, 40)
        base = [sentence(topic) for _ in range(rnd.randint(8, 20))]
        day = rnd.randint(0, 59)
        for v in range(rnd.randint(1, 6)):
            keep = [s for s in base if rnd.random() < 0.8] or base[:3]
            if rnd.random() < 0.5 and len(keep) > 3:
                i = rnd.randrange(len(keep) - 1)
                keep[i], keep[i + 1] = keep[i + 1], keep[i]
            local = rnd.sample(vocab, 20)
            keep += [sentence(local) for _ in range(rnd.randint(0, 2))]
            if rnd.random() < 0.3:
                keep.append(rnd.choice(BOILER))
            published = start + dt.timedelta(days=day + rnd.randint(0, 1))
            rows.append({"id": f"syn{story}-{v}", "cluster": f"s{story}", "title": "",
                         "text": "\n\n".join(keep), "published": published.isoformat()})
            if len(rows) >= n:
                break
    rnd.shuffle(rows)
    return rows


def corpus(name: str, n: int) -> list[dict]:
    return load_labelled() if name == "labelled" else synthetic(n)


def run_ours(rows: list[dict], jobs: int = 1, events: bool = True) -> tuple[dict[str, str], float]:
    from dedup import Deduper, Settings
    from dedup.readers import article_from_json

    dd = Deduper(Settings(jobs=jobs, events=events))
    arts = [article_from_json(r, r["id"]) for r in rows]
    start = time.perf_counter()
    for outcome in dd.add_many(arts):
        if outcome.error is not None:
            raise SystemExit(f"benchmark corpus item rejected: {outcome.error}")
    elapsed = time.perf_counter() - start
    return dd.index.story_of([a.id for a in arts]), elapsed


def run_datasketch(rows: list[dict]) -> tuple[dict[str, str], float]:
    """The textbook pipeline: word 5-shingles, MinHash(128), MinHashLSH(0.5), union-find."""
    from datasketch import MinHash, MinHashLSH

    word = re.compile(r"\w+")
    lsh = MinHashLSH(threshold=0.5, num_perm=128)
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    texts = [(r["id"], (r.get("title") or "") + "\n" + r["text"]) for r in rows]
    start = time.perf_counter()
    for aid, text in texts:
        w = word.findall(text.lower())
        m = MinHash(num_perm=128)
        m.update_batch([" ".join(w[i:i + 5]).encode() for i in range(max(1, len(w) - 4))])
        parent[aid] = aid
        for other in lsh.query(m):
            ra, rb = find(aid), find(other)
            if ra != rb:
                parent[max(ra, rb)] = min(ra, rb)
        lsh.insert(aid, m)
    elapsed = time.perf_counter() - start
    return {a: find(a) for a, _ in texts}, elapsed


def child(pipeline: str, corpus_name: str, n: int) -> None:
    sys.path.insert(0, str(ROOT))
    from dedup.evaluate import evaluate

    rows = corpus(corpus_name, n)
    if pipeline == "datasketch":
        story_of, elapsed = run_datasketch(rows)
    else:
        story_of, elapsed = run_ours(rows, jobs=2 if pipeline == "ours-2jobs" else 1, events=pipeline != "ours-stories")
    labels = {r["id"]: r.get("cluster") for r in rows}
    q = evaluate(labels, story_of)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"articles": len(rows), "seconds": elapsed, "per_second": len(rows) / elapsed,
                      "peak_rss_mb": round(peak_mb, 1), "pairwise_f1": q["pairwise_f1"], "ari": q["ari"]}))


def run_child(pipeline: str, corpus_name: str, n: int) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", pipeline, "--corpus", corpus_name, "--n", str(n)],
                         check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def measure(pipelines: list[str], corpus_name: str, n: int, repeats: int) -> dict[str, dict]:
    """Run every pipeline ``repeats`` times, interleaved (A B C A B C ...), so that a
    change in machine load during the run hits every pipeline alike."""
    runs: dict[str, list[dict]] = {p: [] for p in pipelines}
    for _ in range(repeats):
        for p in pipelines:
            runs[p].append(run_child(p, corpus_name, n))
    return {
        p: {
            "articles": rs[0]["articles"],
            "per_second_median": round(statistics.median(r["per_second"] for r in rs), 1),
            "per_second_runs": [round(r["per_second"], 1) for r in rs],
            "peak_rss_mb_median": statistics.median(r["peak_rss_mb"] for r in rs),
            "pairwise_f1": rs[0]["pairwise_f1"],
            "ari": rs[0]["ari"],
        }
        for p, rs in runs.items()
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=100_000, help="synthetic corpus size")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--synthetic-repeats", type=int, default=1)
    ap.add_argument("--skip-synthetic", action="store_true")
    ap.add_argument("--skip-jobs", action="store_true", help="leave out the --jobs 2 variant")
    ap.add_argument("--skip-stories", action="store_true", help="leave out the stories-only variant (--no-events)")
    ap.add_argument("--child", choices=["ours", "ours-stories", "ours-2jobs", "datasketch"])
    ap.add_argument("--corpus", default="labelled")
    args = ap.parse_args()
    if args.child:
        child(args.child, args.corpus, args.n)
        return
    plan = [("labelled", args.n, args.repeats)]
    if not args.skip_synthetic:
        plan.append(("synthetic", args.n, args.synthetic_repeats))
    report = {}
    pipelines = (["datasketch", "ours"] + ([] if args.skip_stories else ["ours-stories"])
                 + ([] if args.skip_jobs else ["ours-2jobs"]))
    for name, n, repeats in plan:
        results = measure(pipelines, name, n, repeats)
        theirs = results["datasketch"]
        report[name] = {"datasketch": theirs}
        print(f"{name:10s} {theirs['articles']:>7,} articles | datasketch {theirs['per_second_median']:>8,.0f}/s "
              f"F1 {theirs['pairwise_f1']:.3f} ARI {theirs['ari']:.3f} peak {theirs['peak_rss_mb_median']:.0f} MB"
              f" runs {theirs['per_second_runs']}", flush=True)
        for variant in pipelines[1:]:
            ours = results[variant]
            ratio = round(ours["per_second_median"] / theirs["per_second_median"], 2)
            per_run = [round(a / b, 2) for a, b in zip(ours["per_second_runs"], theirs["per_second_runs"])]
            report[name][variant] = {**ours, "ratio_per_second": ratio, "ratio_per_repeat": per_run}
            print(f"{'':10s} {'':>7s}          | dedup ({variant}) {ours['per_second_median']:>8,.0f}/s "
                  f"F1 {ours['pairwise_f1']:.3f} ARI {ours['ari']:.3f} peak {ours['peak_rss_mb_median']:.0f} MB"
                  f" | ratio {ratio:.2f}x (per repeat {per_run})", flush=True)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
