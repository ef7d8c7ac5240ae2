"""Signing benchmark: dedup's signatures against datasketch's MinHash ``update_batch``.

Both start from the same normalized article texts (meter-dev + bbc-distractors
from ../shared/data, read at run time, then synthetic articles from
``bench/ingest.py`` up to ``--n``) and produce what their index stores:

* ``datasketch``: word 5-shingles, ``MinHash(num_perm=128).update_batch``
  (the textbook near-duplicate signature);
* ``datasketch-32``: the same with 32 permutations, as many as dedup keeps;
* ``dedup``: :func:`dedup.signature.sign_many` in batches of 64 (tokens,
  key terms, a 32-value MinHash equal to datasketch's affine32 scheme, the
  weighted word vector and the trigram hashes used for verification);
* ``dedup-one``: :func:`dedup.signature.sign`, one article at a time (what a
  worker does for a single message).

Every figure is articles per second on one core, the median of ``--repeats``
passes; ratios are dedup / datasketch.

    python bench/signing.py --n 20000 --repeats 5
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from datasketch import MinHash  # noqa: E402

from dedup.settings import Settings  # noqa: E402
from dedup.signature import sign, sign_many  # noqa: E402
from dedup.text import normalize  # noqa: E402
from ingest import load_labelled, synthetic  # noqa: E402

WORD = re.compile(r"\w+")


def datasketch_sign(texts: list[str], num_perm: int) -> None:
    for text in texts:
        w = WORD.findall(text.lower())
        m = MinHash(num_perm=num_perm)
        m.update_batch([" ".join(w[i : i + 5]).encode() for i in range(max(1, len(w) - 4))])


def dedup_sign_many(texts: list[str], settings: Settings) -> None:
    for i in range(0, len(texts), 64):
        sign_many(texts[i : i + 64], [None] * len(texts[i : i + 64]), settings)


def dedup_sign_one(texts: list[str], settings: Settings) -> None:
    for text in texts:
        sign(text, None, settings)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=20000, help="articles (labelled first, then synthetic)")
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    rows = load_labelled()
    if args.n > len(rows):
        rows += synthetic(args.n - len(rows))
    texts = [normalize(r["text"], r.get("title") or "")[0] for r in rows[: args.n]]
    texts = [t for t in texts if WORD.search(t)]
    settings = Settings()
    runs: dict[str, list[float]] = {"datasketch": [], "datasketch-32": [], "dedup": [], "dedup-one": []}
    jobs = {
        "datasketch": lambda: datasketch_sign(texts, 128),
        "datasketch-32": lambda: datasketch_sign(texts, 32),
        "dedup": lambda: dedup_sign_many(texts, settings),
        "dedup-one": lambda: dedup_sign_one(texts, settings),
    }
    dedup_sign_many(texts, settings)  # warm the word table once, as a running service has it
    for _ in range(args.repeats):  # interleaved, so machine noise hits every variant alike
        for name, job in jobs.items():
            t = time.perf_counter()
            job()
            runs[name].append(len(texts) / (time.perf_counter() - t))
    med = {k: statistics.median(v) for k, v in runs.items()}
    print(f"{len(texts):,} articles, median of {args.repeats} passes, one core")
    for name, rate in med.items():
        print(f"  {name:14s} {rate:9,.0f} articles/s   runs: {', '.join(f'{r:,.0f}' for r in runs[name])}")
    print(f"ratios: dedup / datasketch(128) {med['dedup'] / med['datasketch']:.2f}x, "
          f"dedup / datasketch(32) {med['dedup'] / med['datasketch-32']:.2f}x, "
          f"one-at-a-time dedup / datasketch(128) {med['dedup-one'] / med['datasketch']:.2f}x")


if __name__ == "__main__":
    main()
