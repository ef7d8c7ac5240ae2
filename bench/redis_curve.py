"""Scaling curve of the Redis index: bulk-ingest throughput and bytes/article as it grows.

Signing a million real articles takes longer than storing them, so this
feeds synthetic entries straight to ``RedisIndex.ingest_many``: each has 10
key terms drawn from a 2M-word vocabulary (its MinHash is the per-permutation
minimum over them, like ``dedup.signature``), ~150 weighted terms, ~185
trigram hashes, 8 sentence hashes and ~2.4 kB of text; one in five is a
rewrite of a recent article (8 of its key terms, most of its terms and half
its trigrams), so stories form and buckets are shared.  Publication days
advance every 5,000 articles, so the window filter does real work.

Reports, per segment, articles/s of that segment and used_memory/N so far:

    python bench/redis_curve.py --n 300000 --step 50000
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import redis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from redis_index import start_server, used_memory  # noqa: E402

from dedup.index.redis import RedisIndex  # noqa: E402
from dedup.records import Entry, Signature  # noqa: E402
from dedup.settings import Settings  # noqa: E402
from dedup.signature import quantized_weights  # noqa: E402
from dedup.stories import make_decider  # noqa: E402

VOCAB = 2_000_000
WORDS = [f"w{i}" for i in range(20_000)]


class Synth:
    """Deterministic synthetic articles with planted rewrites."""

    def __init__(self, num_perm: int, seed: int = 5) -> None:
        self.rng = np.random.default_rng(seed)
        self.perm_a = self.rng.integers(1, 2**31, num_perm, dtype=np.uint64) | np.uint64(1)
        self.perm_b = self.rng.integers(0, 2**31, num_perm, dtype=np.uint64)
        self.recent: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []

    def minhash(self, keys: np.ndarray) -> np.ndarray:
        h = (self.perm_a[:, None] * keys[None, :].astype(np.uint64) + self.perm_b[:, None]) % np.uint64(4294967291)
        return h.min(axis=1).astype(np.uint32)

    def entry(self, i: int) -> Entry:
        rng = self.rng
        if self.recent and rng.random() < 0.2:
            keys0, terms0, sh0 = self.recent[int(rng.integers(len(self.recent)))]
            keys = np.concatenate([keys0[:8], rng.integers(0, VOCAB, 2)])
            terms = np.unique(np.concatenate([terms0[:120], rng.integers(0, VOCAB, 30)]))
            shingles = np.unique(np.concatenate([sh0[: len(sh0) // 2], rng.integers(0, 2**24, 90)])).astype(np.uint32)
        else:
            keys = rng.integers(0, VOCAB, 10)
            terms = np.unique(rng.integers(0, VOCAB, 150))
            shingles = np.unique(rng.integers(0, 2**24, 185)).astype(np.uint32)
        self.recent.append((keys, terms, shingles))
        self.recent = self.recent[-500:]
        levels = rng.integers(1, 256, len(terms)).astype(np.uint8)  # weights as signing quantizes them
        levels[0] = 255
        sig = Signature(minhash=self.minhash(keys), term_ids=terms.astype(np.uint32),
                        term_weights=quantized_weights(levels), shingles=shingles,
                        day=730_000 + i // 5000)
        text = " ".join(WORDS[j] for j in rng.integers(0, len(WORDS), 400))
        return Entry(id=f"syn/{i}", title=f"title {i}", text=text, source="synthetic", published="",
                     url=f"https://example.org/{i}", signature=sig,
                     sentence_hashes=[int(x) for x in rng.integers(0, 2**32, 8)])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=300_000)
    ap.add_argument("--step", type=int, default=50_000)
    args = ap.parse_args()
    settings = Settings()
    synth = Synth(settings.num_perm)
    with tempfile.TemporaryDirectory() as tmp:
        proc, port = start_server(tmp)
        try:
            client = redis.Redis(port=port)
            before = used_memory(client)
            print(f"{'articles':>10}{'segment art/s':>15}{'bytes/article':>15}{'stories':>10}")
            with RedisIndex(settings, url=f"redis://127.0.0.1:{port}/0", namespace="curve") as idx:
                decide = make_decider(idx, settings)
                done = 0
                while done < args.n:
                    batch = [synth.entry(done + k) for k in range(min(args.step, args.n - done))]
                    t = time.perf_counter()
                    for j in range(0, len(batch), 1024):
                        idx.ingest_many(batch[j:j + 1024], decide)
                    rate = len(batch) / (time.perf_counter() - t)
                    done += len(batch)
                    per = (used_memory(client) - before) / done
                    print(f"{done:10d}{rate:15.0f}{per:15.0f}{client.zcard('{curve}:stories'):10d}", flush=True)
            client.close()
        finally:
            proc.terminate()
            proc.wait()


if __name__ == "__main__":
    main()
