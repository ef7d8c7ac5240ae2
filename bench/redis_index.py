"""Benchmark: dedup's Redis story index vs datasketch MinHashLSH on Redis.

Starts its own throwaway redis-server on a free port (never touches 6379),
signs N articles once (meter-dev + bbc-distractors from ../shared/data, then
synthetic articles recombined from their sentences if N is larger), and for
each of ``--runs`` runs on a flushed server measures:

* dedup streaming ingest (``dedup.stories.assign``: duplicate check, candidate
  read, verification, atomic write) -- articles/s and per-article p50/p99;
  and the same without the client's copy of the buckets (``--redis-mirror 0``:
  two round trips for an article with candidates instead of one);
* dedup bulk (``ingest_many`` in pipelined chunks of 64) -- articles/s;
* datasketch ``MinHashLSH`` (params=(32,1), redis storage) query + insert per
  article -- articles/s and p50/p99;
* datasketch ``insertion_session`` bulk insert (no queries) -- articles/s;
* bytes per article: ``INFO memory`` used_memory delta / N for each.

Both get the same MinHash values (``dedup.signature.sign``).  dedup also
stores the record (minhash, title, zlib text; the term vector and trigrams
are signed again from the text when another process reads the record) and
stories; datasketch only keys in buckets.  Also measured: bytes with
``--store-features`` (records keep the features), and streaming with a cold
signature cache both ways (the price of signing again on reading).  Prints medians of the runs and ratios.

    python bench/redis_index.py --n 3000 --runs 3
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import redis
from datasketch import MinHashLSH

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from dedup.index.redis.scripts import SLOT as redis_lua  # noqa: E402
from dedup.index.redis.slot import RedisIndex  # noqa: E402
from dedup.readers import read_paths  # noqa: E402
from dedup.records import Article, Entry  # noqa: E402
from dedup.service import Deduper  # noqa: E402
from dedup.settings import Settings  # noqa: E402
from dedup.signature import as_lean_minhash  # noqa: E402
from dedup.stories import assign  # noqa: E402

DATA = ROOT.parent / "shared" / "data"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# jemalloc's option to back its memory with transparent huge pages (2 MB instead of 4 kB), for a
# redis-server linked against the system's libjemalloc (the Debian/Ubuntu package); needs
# /sys/kernel/mm/transparent_hugepage/enabled at "madvise" or "always".  See docs/redis.md, "Growth curve".
HUGE_PAGES_ENV = {"MALLOC_CONF": "thp:always,metadata_thp:always"}


def start_server(workdir: str, huge_pages: bool = False) -> tuple[subprocess.Popen, int]:
    exe = shutil.which("redis-server")
    if exe is None:
        sys.exit("redis-server is not installed")
    port = free_port()
    env = {**os.environ, **HUGE_PAGES_ENV} if huge_pages else None
    # with the system-wide setting at "always", redis-server turns huge pages off for itself unless told not to
    thp = ["--disable-thp", "no"] if huge_pages else []
    proc = subprocess.Popen([exe, "--port", str(port), "--bind", "127.0.0.1", "--dir", workdir, "--save", "",
                             "--appendonly", "no", *thp], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
            return proc, port
        except OSError:
            time.sleep(0.05)
    proc.kill()
    sys.exit("redis-server did not start")


def load_articles(n: int) -> list[Article]:
    """Real articles first; beyond them, synthetic ones mixing sentences of several real ones."""
    paths = [DATA / "meter-dev.jsonl", DATA / "bbc-distractors.jsonl"]
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        sys.exit(f"evaluation data missing: {', '.join(missing)} (expected in {DATA})")
    real = [a for a in read_paths([str(p) for p in paths]) if isinstance(a, Article)]
    out = real[:n]
    rng = random.Random(7)
    sentences = [s for a in real for s in a.text.split(". ") if len(s) > 40]
    for i in range(n - len(out)):
        text = ". ".join(rng.sample(sentences, rng.randint(6, 20))) + "."
        out.append(Article(id=f"synthetic/{i}", text=text, title="", source="synthetic",
                           published=real[i % len(real)].published))
    return out


def signed_entries(n: int, settings: Settings) -> list[Entry]:
    """:func:`load_articles`, normalized and signed once (not part of any timing), as every bench feeds them."""
    dd = Deduper(settings)
    return [dd.prepare(a) for a in load_articles(n)]


def used_memory(client: redis.Redis) -> int:
    return int(client.info("memory")["used_memory"])


def load_scripts(client: redis.Redis) -> int:
    """Load dedup's Lua scripts once, up front: bytes the server's script cache grew by.

    The cache is per server, not per article (FLUSHALL keeps it), so it is
    loaded before any ``used_memory`` baseline and reported on its own.
    """
    before = used_memory(client)
    for name in redis_lua.SCRIPTS:
        client.script_load(getattr(redis_lua, name))
    return used_memory(client) - before


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def ingest_timed(idx: Any, entries: list[Entry], settings: Settings, bulk: bool) -> tuple[float, list[float]]:
    """Ingest ``entries`` into ``idx``: seconds in all, and each article's seconds when streaming.
    Streaming is ``assign`` per article (what a worker fed one article at a time does); bulk is
    ``ingest_many`` (what ``Deduper.add_many`` and the worker's batches do), same assignments."""
    lat: list[float] = []
    t0 = time.perf_counter()
    if bulk:
        idx.ingest_many(entries, fallback=lambda e: assign(idx, e, settings))
    else:
        for e in entries:
            t = time.perf_counter()
            assign(idx, e, settings)
            lat.append(time.perf_counter() - t)
    return time.perf_counter() - t0, lat


def run_dedup(url: str, entries: list[Entry], settings: Settings, client: redis.Redis,
              bulk: bool = False) -> dict[str, float]:
    """Streaming: ``assign`` per article (what a worker fed one article at a time does).
    Bulk: ``RedisIndex.ingest_many`` (what ``Deduper.add_many`` and the worker's batches do), same
    assignments."""
    client.flushall()
    before = used_memory(client)
    with RedisIndex(settings, url=url, namespace="bench") as idx:
        total, lat = ingest_timed(idx, entries, settings, bulk)
    lat = lat or [0.0]
    return {"rate": len(entries) / total, "p50": pct(lat, 0.5), "p99": pct(lat, 0.99),
            "bytes": (used_memory(client) - before) / len(entries)}


def run_cold(url: str, entries: list[Entry], settings: Settings, client: redis.Redis, bulk: bool = False) -> float:
    """Another worker's articles as candidates: one index writes every other article (bulk, not timed), then
    a second index with an empty signature cache ingests the rest (streaming, or bulk as the worker's
    batches do); its candidates among the first half are read from Redis (and, for records without
    features, signed again).  Returns its articles/s."""
    client.flushall()
    with RedisIndex(settings, url=url, namespace="bench") as writer:
        writer.ingest_many(entries[0::2])
    with RedisIndex(settings, url=url, namespace="bench") as idx:
        rest = entries[1::2]
        t0 = time.perf_counter()
        if bulk:
            idx.ingest_many(rest, fallback=lambda e: assign(idx, e, settings))
        else:
            for e in rest:
                assign(idx, e, settings)
        return len(rest) / (time.perf_counter() - t0)


def datasketch_lsh(port: int) -> MinHashLSH:
    return MinHashLSH(threshold=0.5, num_perm=32, params=(32, 1),
                      storage_config={"type": "redis", "basename": b"x",
                                      "redis": {"host": "127.0.0.1", "port": port}})


def run_datasketch(port: int, entries: list[Entry], settings: Settings, client: redis.Redis) -> dict[str, float]:
    mhs = [(e.id, as_lean_minhash(e.signature, settings.seed)) for e in entries]
    client.flushall()
    before = used_memory(client)
    lsh = datasketch_lsh(port)
    lat = []
    t0 = time.perf_counter()
    for aid, m in mhs:
        t = time.perf_counter()
        lsh.query(m)
        lsh.insert(aid, m)
        lat.append(time.perf_counter() - t)
    total = time.perf_counter() - t0
    stream_bytes = (used_memory(client) - before) / len(entries)
    client.flushall()
    lsh = datasketch_lsh(port)
    t0 = time.perf_counter()
    with lsh.insertion_session() as session:
        for aid, m in mhs:
            session.insert(aid, m)
    bulk = time.perf_counter() - t0
    return {"rate": len(entries) / total, "p50": pct(lat, 0.5), "p99": pct(lat, 0.99),
            "bytes": stream_bytes, "bulk_rate": len(entries) / bulk}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=3000, help="articles to load (real first, then synthetic)")
    ap.add_argument("--runs", type=int, default=3, help="runs per system; medians are reported")
    args = ap.parse_args()
    settings = Settings()
    t = time.perf_counter()
    entries = signed_entries(args.n, settings)
    print(f"read and signed {len(entries)} articles in {time.perf_counter() - t:.1f}s (not part of the timings)")
    with tempfile.TemporaryDirectory() as tmp:
        proc, port = start_server(tmp)
        try:
            client = redis.Redis(port=port)
            url = f"redis://127.0.0.1:{port}/0"
            script_bytes = load_scripts(client)
            ours, nocopy, bulk, theirs = [], [], [], []
            for run in range(args.runs):
                ours.append(run_dedup(url, entries, settings, client))
                nocopy.append(run_dedup(url, entries, dataclasses.replace(settings, redis_mirror=0), client))
                bulk.append(run_dedup(url, entries, settings, client, bulk=True))
                theirs.append(run_datasketch(port, entries, settings, client))
                print(f"run {run + 1}: dedup {ours[-1]['rate']:.0f}/s, bulk {bulk[-1]['rate']:.0f}/s, "
                      f"datasketch {theirs[-1]['rate']:.0f}/s, bulk {theirs[-1]['bulk_rate']:.0f}/s")
            # records stored in full (features kept): what re-signing on reading saves in bytes and costs in time
            full = dataclasses.replace(settings, store_features=True)  # --store-features
            full_bytes = run_dedup(url, entries, full, client, bulk=True)["bytes"]
            cold = [(run_cold(url, entries, settings, client), run_cold(url, entries, full, client),
                     run_cold(url, entries, settings, client, bulk=True), run_cold(url, entries, full, client, bulk=True))
                    for _ in range(args.runs)]
            client.close()
        finally:
            proc.terminate()
            proc.wait()

    def med(rows: list[dict[str, float]], k: str) -> float:
        return statistics.median(r[k] for r in rows)

    print(f"\nN={len(entries)}, medians of {args.runs} runs, redis-server on 127.0.0.1:{port}; "
          f"dedup's script cache ({script_bytes / 1024:.0f} kB, once per server) is not counted per article")
    print(f"{'':38}{'articles/s':>12}{'p50 ms':>9}{'p99 ms':>9}{'bytes/article':>15}")
    print(f"{'dedup RedisIndex (assign, streaming)':38}{med(ours, 'rate'):12.0f}{med(ours, 'p50') * 1e3:9.2f}"
          f"{med(ours, 'p99') * 1e3:9.2f}{med(ours, 'bytes'):15.0f}")
    print(f"{'  the same without the bucket copy':38}{med(nocopy, 'rate'):12.0f}{med(nocopy, 'p50') * 1e3:9.2f}"
          f"{med(nocopy, 'p99') * 1e3:9.2f}{med(nocopy, 'bytes'):15.0f}")
    print(f"{'datasketch query+insert (streaming)':38}{med(theirs, 'rate'):12.0f}{med(theirs, 'p50') * 1e3:9.2f}"
          f"{med(theirs, 'p99') * 1e3:9.2f}{med(theirs, 'bytes'):15.0f}")
    print(f"{'dedup RedisIndex.ingest_many (bulk)':38}{med(bulk, 'rate'):12.0f}{'':18}{med(bulk, 'bytes'):15.0f}")
    print(f"{'dedup --store-features (bulk)':38}{'':30}{full_bytes:15.0f}")
    print(f"{'datasketch insertion_session (bulk)':38}{med(theirs, 'bulk_rate'):12.0f}")
    print(f"\nratios dedup/datasketch: streaming speed {med(ours, 'rate') / med(theirs, 'rate'):.2f}x "
          f"({med(nocopy, 'rate') / med(theirs, 'rate'):.2f}x without the bucket copy), "
          f"bulk {med(bulk, 'rate') / med(theirs, 'bulk_rate'):.2f}x, "
          f"p99 latency {med(ours, 'p99') / med(theirs, 'p99'):.2f}x, "
          f"bytes/article {med(ours, 'bytes') / med(theirs, 'bytes'):.2f}x "
          f"({full_bytes / med(theirs, 'bytes'):.2f}x with --store-features)")
    for label, k in (("streamed", 0), ("bulk-loaded", 2)):
        cold_derived = statistics.median(c[k] for c in cold)
        cold_full = statistics.median(c[k + 1] for c in cold)
        print(f"cold cache (half the articles written by another index first, the other half {label}): "
              f"{cold_derived:.0f} articles/s with records signed again on reading, {cold_full:.0f}/s with "
              f"--store-features ({cold_derived / cold_full:.2f}x)")


if __name__ == "__main__":
    main()
