"""Worker throughput and latency: messages/s with 1 and 2 workers, p50/p99 enqueue -> assignment.

    python bench/worker.py [--articles 1000] [--jsonl FILE ...] [--synthetic] [--workers 1,2] [--index auto|redis]

Starts its own redis-server on a free port.  For each worker count it
starts the workers (they import and connect first, so start-up is not
timed), then:

* throughput: pushes all articles at once and times enqueue of the first to
  the last assignment published (Redis clock: stream ids);
* latency: pushes further, unseen articles paced at half the measured
  throughput and reports p50/p99 of (output id time - input id time).

With ``--index auto`` one worker uses the in-process index and more than one
the shared Redis index; ``--index redis`` puts every worker count on the
shared index, which is what a deployment runs and the only fair way to see
what a second worker adds.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import redis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from dedup.streams import message_ms  # noqa: E402

SYLLABLES = "ka ro mi ten sal vor qui bel dra nus pho lin tur gem ast orn pel wix zan cor".split()
_rng = random.Random(3)
# a few thousand pseudo-words: articles share common words but not their key terms, like real news
WORDS = sorted({"".join(_rng.choice(SYLLABLES) for _ in range(_rng.randint(2, 4))) for _ in range(4000)})


def synthetic(n: int, start: int = 0) -> list[bytes]:
    """Articles of ~250 words; every fifth is a light rewrite of the one before (so stories form)."""
    rng = random.Random(7 + start)
    out: list[bytes] = []
    prev = ""
    for i in range(start, start + n):
        if i % 5 == 4 and prev:
            words = prev.split()
            for _ in range(10):
                words[rng.randrange(len(words))] = rng.choice(WORDS)
            text = " ".join(words)
        else:
            # each story draws from its own 60 words, so stories differ in their key terms
            topic = rng.sample(WORDS, 60)
            text = f"Token zq{i}x kv{i}w. " + " ".join(rng.choice(topic) for _ in range(250)) + "."
        prev = text
        out.append(json.dumps({"id": f"b-{i}", "title": f"Item {i}", "text": text}).encode())
    return out


DATA = Path(os.environ.get("DEDUP_DATA_DIR", ROOT.parent / "shared" / "data"))
DEFAULT_DATA = [DATA / "meter-dev.jsonl", DATA / "bbc-distractors.jsonl"]


def from_jsonl(paths: list[str], n: int) -> list[bytes]:
    """Real articles, interleaved across files so both halves mix rewrites and distractors."""
    files = [[ln for ln in Path(p).read_bytes().split(b"\n") if ln.strip()] for p in paths]
    mixed = [ln for group in zip(*files) for ln in group]
    longest = max(files, key=len)
    mixed += longest[min(map(len, files)):]
    return mixed[:n]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_redis(workdir: str) -> tuple[subprocess.Popen, str]:
    port = free_port()
    proc = subprocess.Popen([shutil.which("redis-server") or "redis-server", "--port", str(port), "--bind", "127.0.0.1",
                             "--dir", workdir, "--save", "", "--appendonly", "no"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    client = redis.Redis.from_url(url)
    for _ in range(100):
        try:
            client.ping()
            return proc, url
        except redis.exceptions.ConnectionError:
            time.sleep(0.05)
    raise RuntimeError("redis-server did not start")


def have_redis_index() -> bool:
    try:
        importlib.import_module("dedup.index.redis")  # needs the redis client package
    except ImportError:
        return False
    return True


def spawn_workers(url: str, k: int, shared: bool) -> list[subprocess.Popen]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    args = ["--streams-url", url, "--log-level", "WARNING", "--batch-size", "50", "--block-ms", "200"]
    if shared:
        args += ["--redis", url, "--namespace", f"bench{k}"]
    return [subprocess.Popen([sys.executable, str(ROOT / "worker.py"), *args, "--consumer", f"bench-{i}"],
                             env=env, stderr=subprocess.DEVNULL) for i in range(k)]


def drain(client: redis.Redis, expected: int, timeout: float = 600) -> list[tuple[bytes, dict]]:
    deadline = time.monotonic() + timeout
    while client.xlen("dedup:out") < expected:
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {client.xlen('dedup:out')} of {expected} assignments after {timeout}s")
        time.sleep(0.05)
    return client.xrange("dedup:out")


def percentile(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


def run(url: str, k: int, payloads: list[bytes], fresh: list[bytes], shared: bool) -> dict:
    client = redis.Redis.from_url(url)
    client.flushall()
    client.xgroup_create("dedup:in", "dedup", id="0", mkstream=True)
    procs = spawn_workers(url, k, shared)
    try:
        # wait until every worker has registered with the group (imports done, connected)
        deadline = time.monotonic() + 60
        while len(client.xinfo_consumers("dedup:in", "dedup")) < k:
            if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
                raise RuntimeError("workers did not start")
            time.sleep(0.1)
        # throughput: everything at once
        pipe = client.pipeline(transaction=False)
        for p in payloads:
            pipe.xadd("dedup:in", {b"article": p})
        first_id = pipe.execute()[0]
        rows = drain(client, len(payloads))
        seconds = (message_ms(rows[-1][0]) - message_ms(first_id)) / 1000.0
        rate = len(payloads) / max(seconds, 1e-3)
        # latency: paced at half that rate, so queueing does not dominate
        m = min(len(fresh), max(100, int(rate * 5)))
        pace = 1.0 / (rate / 2)
        base = len(rows)
        for p in fresh[:m]:
            client.xadd("dedup:in", {b"article": p})
            time.sleep(pace)
        rows = drain(client, base + m)[base:]
        lat = [(message_ms(oid) - message_ms(f[b"message_id"])) / 1000.0 for oid, f in rows]
        return {"workers": k, "index": "redis" if shared else "memory", "articles": len(payloads),
                "messages_per_s": round(rate, 1), "latency_p50_ms": round(percentile(lat, 0.5) * 1000, 1),
                "latency_p99_ms": round(percentile(lat, 0.99) * 1000, 1), "paced_at_per_s": round(rate / 2, 1)}
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            p.wait(timeout=30)
        client.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--articles", type=int, default=1000)
    ap.add_argument("--jsonl", action="append",
                    help="bench on these JSONL articles (repeatable) [default: meter-dev + bbc-distractors "
                         "from DEDUP_DATA_DIR when present, else synthetic]")
    ap.add_argument("--synthetic", action="store_true", help="use synthetic articles even when data is present")
    ap.add_argument("--workers", default="1,2", help="comma-separated worker counts")
    ap.add_argument("--index", choices=("auto", "redis"), default="auto",
                    help="auto: in-process index for one worker, Redis for more; redis: Redis for every count")
    args = ap.parse_args()
    jsonl = args.jsonl or ([str(p) for p in DEFAULT_DATA] if all(p.exists() for p in DEFAULT_DATA) else None)
    if jsonl and not args.synthetic:
        items = from_jsonl(jsonl, 2 * args.articles)
        payloads, fresh = items[: args.articles], items[args.articles:] or items[-100:]
    else:
        payloads, fresh = synthetic(args.articles), synthetic(args.articles, start=args.articles)
    with tempfile.TemporaryDirectory() as tmp:
        server, url = start_redis(tmp)
        try:
            for k in (int(x) for x in args.workers.split(",")):
                shared = k > 1 or args.index == "redis"
                if shared and not have_redis_index():
                    print(json.dumps({"workers": k, "skipped": "needs the shared Redis index (dedup/index/redis.py)"}))
                    continue
                print(json.dumps(run(url, k, payloads, fresh, shared)), flush=True)
        finally:
            server.terminate()
            server.wait(timeout=10)


if __name__ == "__main__":
    main()
