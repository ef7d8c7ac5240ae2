"""Scaling curve of the Redis index: bulk-ingest throughput and bytes/article as it grows.

Real articles run out long before a million, so this generates them: each
is ~18 sentences of English words drawn from wordfreq's 20,000 most frequent
by a Zipf law, plus one made-up proper name per sentence out of 2M (the
rare words that tell stories apart; ~2.3 kB of text) with a headline, and one in five is a rewrite
of a recent article (about 70% of its sentences kept in order, four new
ones added), so stories form and buckets are shared.  Every article goes
through ``Deduper.prepare_many`` (normalization and signing, not timed), so
records are what production stores: the minhash and the text, with the term
vector and trigrams signed again on reading.  Publication days advance every
5,000 articles, so the window filter does real work.

Reports, per segment, articles/s of ``RedisIndex.ingest_many`` in that
segment and used_memory/N so far, and where the segment's time went:
redis-server CPU and client CPU per article, HGETs per article (bucket
pieces read, so it grows when buckets do) and microseconds per HGET and HSET
(the same operation getting dearer as the data outgrows the CPU caches), and
the scripts' own Lua time per article (EVALSHA's time less the commands it
called), and how busy the growing redis-server was (all its threads) while the
references ran, since on a 2-core machine a busy neighbour slows them.
``--huge-pages`` starts redis-server with jemalloc backing its memory
with transparent huge pages; ``--control`` grows plain Redis data of the same
shape instead and times random HGETs (no dedup code); ``--datasketch`` grows
datasketch's MinHashLSH on Redis with the same signatures (see docs/redis.md,
"Growth curve").

The machine's own speed drifts (on a shared VM the same work per article has
moved by 40% within one run), which a raw articles/s column cannot tell from
the index getting slower.  So every ``--ref-every`` articles the bench also
times a *reference*: the same ``--reference`` articles bulk-ingested into an
empty index on a second redis-server, identical work each time, whose rate
moves only with the machine.  The ``relative`` column is the segment's rate
divided by the rate of the references run inside it: flat when the index
keeps its speed as it grows, whatever the machine does.  ``paired`` is a
second estimate beside it: each piece of ``--ref-every`` articles of the
growing index over the mean of the references run just before and just
after it, the median of a segment's pieces, which one reference run that
stalls moves little (on a busy VM it can scatter as much as
``relative``; docs/redis.md, "Growth curve").  A segment's rate averages
over all of it, so each row names the index sizes it spans: the first
one's starts from an empty index.

The bar ("throughput and bytes/article flat from 100k to 1M") is read as a
trend: over the segments that start at ``--flat-from`` articles or later,
the least-squares line through ``relative`` must change by less than 10%
between the first segment's middle and the last one's (the raw rate,
without references), and bytes/article by less than 5%.  A trend, because
one segment can dip for a reason that is not growth (Redis doubling its key
table near 2.1M keys, or the machine stalling under one segment and not its
references).  The bench prints that verdict, the trends of the raw rate and
of ``paired`` beside it, and each segment's distance from the median, so a
dip stays visible.

    python bench/redis_curve.py --n 1000000 --step 100000
    python bench/redis_curve.py --n 1000000 --step 100000 --huge-pages
    python bench/redis_curve.py --n 1000000 --step 100000 --control
    python bench/redis_curve.py --n 1000000 --step 100000 --datasketch
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import redis
import wordfreq

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from redis_index import datasketch_lsh, start_server, used_memory  # noqa: E402

from dedup.index.redis.slot import RedisIndex  # noqa: E402
from dedup.records import Article, Entry  # noqa: E402
from dedup.service import Deduper  # noqa: E402
from dedup.settings import Settings  # noqa: E402
from dedup.signature import as_lean_minhash  # noqa: E402


NAMES = 2_000_000


class Synth:
    """Deterministic synthetic articles with planted rewrites."""

    def __init__(self, seed: int = 5) -> None:
        self.rng = np.random.default_rng(seed)
        self.words = np.array(wordfreq.top_n_list("en", 20_000), dtype=object)
        p = 1.0 / (np.arange(len(self.words)) + 10.0)
        self.cdf = np.cumsum(p / p.sum())
        self.recent: list[list[str]] = []

    @staticmethod
    def _name(k: int) -> str:
        """A made-up proper name (a word no dictionary knows, like most names in the news), one of 2M."""
        letters = []
        for _ in range(5):
            k, r = divmod(k, 26)
            letters.append(chr(97 + r))
        return "Z" + "".join(letters)

    def _sentences(self, n: int) -> list[str]:
        lengths = self.rng.integers(8, 22, n)
        picks = np.searchsorted(self.cdf, self.rng.random(int(lengths.sum())))
        words = self.words[np.minimum(picks, len(self.words) - 1)].tolist()
        names = self.rng.integers(0, NAMES, n).tolist()
        out, at = [], 0
        for k, name in zip(lengths.tolist(), names):
            sentence = words[at:at + k]
            sentence.insert(k // 2, self._name(name))  # one name per sentence, as in news copy
            out.append(" ".join(sentence).capitalize() + ".")
            at += k
        return out

    def article(self, i: int) -> Article:
        rng = self.rng
        if self.recent and rng.random() < 0.2:
            base = self.recent[int(rng.integers(len(self.recent)))]
            kept = [s for s in base if rng.random() < 0.7]
            for s in self._sentences(4):
                kept.insert(int(rng.integers(len(kept) + 1)), s)
            sentences = kept
        else:
            sentences = self._sentences(18)
        self.recent.append(sentences)
        self.recent = self.recent[-500:]
        day = 730_000 + i // 5000
        return Article(id=f"syn/{i}", text="\n\n".join(sentences), title=self._sentences(1)[0][:-1],
                       source="synthetic", published=dt.datetime.fromordinal(day),
                       url=f"https://example.org/{i}")


def server_cpu(client: redis.Redis) -> float:
    """Seconds of CPU redis-server's main thread has used (where the scripts run)."""
    info = client.info("cpu")
    return float(info["used_cpu_user_main_thread"]) + float(info["used_cpu_sys_main_thread"])


def process_cpu(pid: int) -> float:
    """Seconds of CPU a process has used, all its threads (Linux /proc; 0 elsewhere): redis-server's
    background threads (jemalloc's purging, lazy frees) are not in ``server_cpu``."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return 0.0


def command_stats(client: redis.Redis) -> dict[str, tuple[int, int]]:
    """(calls, usec) of every command so far, scripts' included.  A bucket is one HGET per 60-byte piece,
    so HGETs per article grow with the buckets the articles fall into; microseconds per call grow when
    the same work gets dearer (a data set that no longer fits the CPU caches)."""
    return {name.removeprefix("cmdstat_"): (int(v["calls"]), int(v["usec"]))
            for name, v in client.info("commandstats").items()}


def huge_page_share(pid: int) -> str:
    """How much of redis-server's resident memory is in transparent huge pages (Linux)."""
    try:
        rows = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:])
    except OSError:
        return "unknown (no /proc)"
    kb = {k: int(v.split()[0]) for k, v in rows.items() if v.strip().endswith("kB")}
    return f"{kb.get('AnonHugePages', 0) / max(kb.get('Rss', 1), 1):.0%} of {kb.get('Rss', 0) / 2**20:.2f} GB resident"


# The control (--control): plain Redis data of the index's shape (per article, a 1.2 kB string like a
# record and two 20-field hashes like shards), grown the same way, with no dedup code in the loop: random
# HGETs from a Lua loop, timed by redis-server itself (INFO commandstats), as the us/HGET column is.
CONTROL_FILL = """
local value = string.rep('r', 1200)
for i = tonumber(ARGV[1]), tonumber(ARGV[2]) do
  redis.call('SET', 'c:a:' .. i, value)
  for j = 0, 1 do
    local fields = {}
    for f = 1, 20 do fields[#fields + 1] = 'f' .. f; fields[#fields + 1] = string.rep('v', 12) .. i end
    redis.call('HSET', 'c:h:' .. (2 * i + j), unpack(fields))
  end
end
return 1
"""
CONTROL_PROBE = """
math.randomseed(tonumber(ARGV[3]))
local lo, hi = tonumber(ARGV[1]), tonumber(ARGV[2])
for _ = 1, 20000 do redis.call('HGET', 'c:h:' .. math.random(lo, hi - 1), 'f' .. math.random(1, 20)) end
return 1
"""


def control(args: argparse.Namespace) -> None:
    """The same growth without dedup: what a random HGET costs this redis-server as its data grows."""
    with tempfile.TemporaryDirectory() as tmp:
        proc, port = start_server(tmp, huge_pages=args.huge_pages)
        try:
            client = redis.Redis(port=port)
            fill, probe = client.register_script(CONTROL_FILL), client.register_script(CONTROL_PROBE)
            before = used_memory(client)
            print(f"{'articles':>10}{'keys':>10}{'bytes/article':>15}{'us/HGET':>9}{'newest 50k':>12}"
                  "  (medians of 5 x 20,000 HGETs on random keys, of all articles / of the newest 50,000)")
            done = 0
            while done < args.n:
                upto = min(done + args.step, args.n)
                for a in range(done, upto, 2000):
                    fill(args=[a, min(a + 2000, upto) - 1])
                done = upto
                medians = []
                for lo in (0, 2 * max(done - 50_000, 0)):  # all hashes, then the newest articles' only
                    per_call = []
                    for k in range(5):
                        calls0, us0 = command_stats(client).get("hget", (0, 0))
                        probe(args=[lo, 2 * done, k])
                        calls, us = command_stats(client)["hget"]
                        per_call.append((us - us0) / (calls - calls0))
                    medians.append(statistics.median(per_call))
                print(f"{done:10d}{client.dbsize():10d}{(used_memory(client) - before) / done:15.0f}"
                      f"{medians[0]:9.2f}{medians[1]:12.2f}", flush=True)
            print(f"redis-server's memory in huge pages: {huge_page_share(proc.pid)}")
            client.close()
        finally:
            proc.terminate()
            proc.wait()


class Reference:
    """The same articles bulk-ingested into an empty index on its own redis-server, again and again: a rate
    that moves only with the machine's speed, to divide the growing index's rate by."""

    def __init__(self, workdir: str, entries: list[Entry], settings: Settings) -> None:
        self.entries, self.settings = entries, settings
        self.proc, port = start_server(workdir)
        self.url = f"redis://127.0.0.1:{port}/0"
        self.client = redis.Redis(port=port)
        self.seconds = 0.0
        self.articles = 0

    def run(self) -> float:
        """One more reference run; returns its articles/s."""
        self.client.flushall()  # its own throwaway server
        with RedisIndex(self.settings, url=self.url, namespace="ref") as idx:
            t = time.perf_counter()
            for j in range(0, len(self.entries), 1024):
                idx.ingest_many(self.entries[j:j + 1024])
            seconds = time.perf_counter() - t
        self.seconds += seconds
        self.articles += len(self.entries)
        return len(self.entries) / seconds

    def take_rate(self) -> float:
        """Articles/s of the reference runs since the last call."""
        rate = self.articles / self.seconds if self.seconds else float("nan")
        self.seconds, self.articles = 0.0, 0
        return rate

    def close(self) -> None:
        self.client.close()
        self.proc.terminate()
        self.proc.wait()


@dataclasses.dataclass
class Segment:
    """One row of the curve: the index grew from ``start`` to ``end`` articles at ``rate`` articles/s."""

    start: int
    end: int
    rate: float
    relative: float  # rate / the pooled rate of the references run inside the segment (nan without references)
    paired: float  # median over its pieces of piece rate / mean of the references either side (nan without)
    bytes_per_article: float  # used_memory growth / ``end``


def span(start: int, end: int) -> str:
    """``100k-200k``: the index sizes a segment's rate averages over."""
    def short(n: int) -> str:
        if n == 0:
            return "0"
        return f"{n / 1e6:g}M" if n >= 1_000_000 and n % 100_000 == 0 else f"{n / 1e3:g}k" if n % 1000 == 0 else str(n)
    return f"{short(start)}-{short(end)}"


def trend(xs: list[float], ys: list[float]) -> float:
    """Change of the least-squares line through (xs, ys) from the first x to the last, as a fraction of its
    value at the first x: one number for "does it get slower as it grows", which one noisy segment moves little."""
    slope, icept = np.polyfit(xs, ys, 1)
    first = slope * xs[0] + icept
    return float(slope * (xs[-1] - xs[0]) / first)


def verdict(rows: list[Segment], flat_from: int, raw_only: bool) -> None:
    """Print whether the curve is flat from ``flat_from`` on, by the rule in the module docstring."""
    tail = [r for r in rows if r.start >= flat_from]
    if len(tail) < 3:
        print(f"flat from {flat_from:,}: needs three segments that start there or later (got {len(tail)})")
        return
    mids = [(r.start + r.end) / 2 for r in tail]
    print(f"\nfrom {flat_from:,} on ({len(tail)} segments, {span(tail[0].start, tail[-1].end)}):")
    checks = [("raw art/s", [r.rate for r in tail], 0.10 if raw_only else None)]
    if not raw_only:
        checks[:0] = [("relative", [r.relative for r in tail], 0.10),
                      ("paired", [r.paired for r in tail], None)]
    checks.append(("bytes/article", [r.bytes_per_article for r in tail], 0.05))
    flat = True
    for name, ys, bar in checks:
        change, med = trend(mids, ys), statistics.median(ys)
        worst = min(ys) / med - 1, max(ys) / med - 1
        ok = bar is None or abs(change) < bar
        flat &= ok
        print(f"  {name:>14}: trend {change:+.1%} over the span"
              f"{'' if bar is None else f' (bar: within +-{bar:.0%}) ' + ('met' if ok else 'NOT MET')}; "
              f"segments {worst[0]:+.1%} to {worst[1]:+.1%} of their median {f'{med:,.0f}' if med >= 10 else f'{med:.3f}'}")
    if raw_only:
        print("  (no reference ran, so the verdict rests on the raw rate, which moves with the machine)")
    print(f"  flat from {flat_from:,}: {'yes' if flat else 'no'}")


def prepared(synth: Synth, first: int, n: int, dd: Deduper) -> list[Entry]:
    """``n`` synthetic articles from number ``first`` on, normalized and signed (not timed)."""
    arts = [synth.article(first + k) for k in range(n)]
    batch = [e for j in range(0, len(arts), 1000) for e in dd.prepare_many(arts[j:j + 1000]) if isinstance(e, Entry)]
    assert len(batch) == len(arts)
    return batch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=300_000)
    ap.add_argument("--step", type=int, default=50_000)
    ap.add_argument("--huge-pages", action="store_true",
                    help="start redis-server with jemalloc's transparent huge pages (MALLOC_CONF=thp:always)")
    ap.add_argument("--datasketch", action="store_true",
                    help="grow datasketch's MinHashLSH (Redis storage, insertion_session) instead, same signatures")
    ap.add_argument("--control", action="store_true",
                    help="grow plain Redis data of the same shape instead of the index, and time random HGETs")
    ap.add_argument("--commands", action="store_true",
                    help="also print, per segment, the server's time per article in each command the scripts call")
    ap.add_argument("--reference", type=int, default=2000,
                    help="articles of the reference index (0: none), ingested into an empty index every --ref-every")
    ap.add_argument("--ref-every", type=int, default=10_000,
                    help="articles of the growing index between two reference runs")
    ap.add_argument("--flat-from", type=int, default=100_000,
                    help="index size from which the closing verdict asks for a flat curve")
    args = ap.parse_args()
    if args.control:
        control(args)
        return
    settings = Settings()
    synth = Synth()
    dd = Deduper(settings)
    # the reference's articles come from a generator of their own, so the growing index sees the same ones
    # with or without it
    ref_entries = prepared(Synth(seed=11), 0, args.reference, dd) if args.reference else []
    with tempfile.TemporaryDirectory() as tmp, tempfile.TemporaryDirectory() as ref_tmp:
        proc, port = start_server(tmp, huge_pages=args.huge_pages)
        ref = None
        try:
            ref = Reference(ref_tmp, ref_entries, settings) if ref_entries else None
            client = redis.Redis(port=port)
            before = used_memory(client)
            print(f"{'articles':>17}{'segment art/s':>15}{'ref art/s':>11}{'relative':>10}{'paired':>10}"
                  f"{'bytes/article':>15}"
                  f"{'stories':>10}{'server us/art':>15}{'client us/art':>15}{'HGET/art':>10}{'us/HGET':>9}"
                  f"{'us/HSET':>9}{'Lua us/art':>12}{'keys':>10}")
            with RedisIndex(settings, url=f"redis://127.0.0.1:{port}/0", namespace="curve") as idx:
                lsh = datasketch_lsh(port) if args.datasketch else None
                done = 0
                rows: list[Segment] = []
                # the reference just before the first piece; every later one follows a piece and precedes the next
                ref_before = ref.run() if ref is not None else float("nan")
                if ref is not None:
                    ref.take_rate()  # not inside any segment
                while done < args.n:
                    batch = prepared(synth, done, min(args.step, args.n - done), dd)
                    if lsh is not None:  # the same signatures as datasketch LeanMinHashes (not timed)
                        lean = [(e.id, as_lean_minhash(e.signature, settings.seed)) for e in batch]
                    server0, stats0 = server_cpu(client), command_stats(client)
                    seconds, cpu = 0.0, 0.0
                    ref_wall, ref_busy = 0.0, 0.0  # the reference's time, and the growing server's CPU meanwhile
                    ratios = []  # each piece's rate over the mean of the references either side of it
                    for k in range(0, len(batch), args.ref_every):
                        part = batch[k:k + args.ref_every]
                        t, c = time.perf_counter(), time.process_time()
                        if lsh is not None:
                            with lsh.insertion_session() as session:
                                for aid, m in lean[k:k + args.ref_every]:
                                    session.insert(aid, m)
                        else:
                            for j in range(0, len(part), 1024):
                                idx.ingest_many(part[j:j + 1024])
                        took = time.perf_counter() - t
                        seconds += took
                        cpu += time.process_time() - c
                        if ref is not None:  # not counted in the segment's own figures
                            server_ref, busy0, t_ref = server_cpu(client), process_cpu(proc.pid), time.perf_counter()
                            ref_after = ref.run()
                            ratios.append(len(part) / took / ((ref_before + ref_after) / 2))
                            ref_before = ref_after
                            ref_wall += time.perf_counter() - t_ref
                            ref_busy += process_cpu(proc.pid) - busy0
                            server0 += server_cpu(client) - server_ref  # (the growing server idles meanwhile)
                    rate = len(batch) / seconds
                    cpu = cpu / len(batch) * 1e6
                    server = (server_cpu(client) - server0) / len(batch) * 1e6
                    ref_rate = ref.take_rate() if ref is not None else float("nan")
                    stats = command_stats(client)
                    delta = {c: (v[0] - stats0.get(c, (0, 0))[0], v[1] - stats0.get(c, (0, 0))[1])
                             for c, v in stats.items()}
                    (hg, hg_us), (hs, hs_us) = (delta.get(c, (0, 0)) for c in ("hget", "hset"))
                    # commands called from a script count in their own stats and in EVALSHA's time
                    lua = (delta.get("evalsha", (0, 0))[1]
                           - sum(us for c, (_, us) in delta.items() if c not in ("evalsha", "info", "zcard")))
                    hgets = hg / len(batch)
                    start, done = done, done + len(batch)
                    per = (used_memory(client) - before) / done
                    paired = statistics.median(ratios) if ratios else float("nan")
                    rows.append(Segment(start, done, rate, rate / ref_rate, paired, per))
                    print(f"{span(start, done):>17}{rate:15.0f}{ref_rate:11.0f}{rate / ref_rate:10.3f}{paired:10.3f}"
                          f"{per:15.0f}"
                          f"{client.zcard('{curve}:stories'):10d}"
                          f"{server:15.0f}{cpu:15.0f}{hgets:10.1f}{hg_us / max(hg, 1):9.2f}{hs_us / max(hs, 1):9.2f}"
                          f"{f'{lua / len(batch):.0f}' if 'evalsha' in delta else '-':>12}{client.dbsize():10d}",
                          flush=True)
                    if ref is not None:  # a busy neighbour slows the reference (2 cores: client and server)
                        print(f"          the growing redis-server's CPU (all threads) while the references ran: "
                              f"{100 * ref_busy / max(ref_wall, 1e-9):.0f}% of their time; the paired pieces' ratios: "
                              f"{min(ratios):.3f} to {max(ratios):.3f}", flush=True)
                    if args.commands:  # where the server's time per article went, command by command
                        top = sorted(((us, c, n) for c, (n, us) in delta.items() if c not in ("evalsha", "info")),
                                     reverse=True)[:8]
                        print("          us/art by command: " + ", ".join(
                            f"{c} {us / len(batch):.1f} ({n / len(batch):.1f} calls)" for us, c, n in top), flush=True)
            print(f"redis-server's memory in huge pages: {huge_page_share(proc.pid)}")
            verdict(rows, args.flat_from, raw_only=ref is None)
            client.close()
        finally:
            proc.terminate()
            proc.wait()
            if ref is not None:
                ref.close()


if __name__ == "__main__":
    main()
