"""Benchmark: the two key layouts of the Redis index on a local 3-master Redis Cluster.

Starts three ``redis-server --cluster-enabled yes`` on free ports in a temp dir (never touches 6379),
joins them with ``redis-cli --cluster create``, signs N articles once (as ``bench/redis_index.py``
does) and, for each of ``--runs`` runs on flushed masters, ingests them with each layout:

* ``slot`` (``--redis-layout slot``): the whole index in one slot, so one master does all its work;
* ``spread`` (the default on a cluster): each band group's buckets in a slot of its own.

For each: streaming ingest (``assign`` per article) articles/s and p50/p99, bulk (``ingest_many``)
articles/s, and per master the server CPU per article (``INFO cpu``, main thread), the bytes per
article (``INFO memory`` used_memory delta / N) and the share of each in the sum.  Prints medians.
The busiest master's share is the figure that says whether an index's load spreads: 100% means one
master serves it all.  datasketch's ``MinHashLSH`` is not in this bench: its Redis storage speaks to
one server, not to a cluster.

All processes share this machine's CPUs, so the rates say little about a cluster of real machines;
the CPU and byte shares per master do.

    python bench/redis_cluster.py --n 3000 --runs 3
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import redis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from redis_index import free_port, ingest_timed, pct, signed_entries  # noqa: E402

from dedup.index import open_index  # noqa: E402
from dedup.records import Entry  # noqa: E402
from dedup.settings import Settings  # noqa: E402


def start_cluster(workdir: str, masters: int = 3) -> tuple[list[subprocess.Popen], list[int]]:
    exe, cli = shutil.which("redis-server"), shutil.which("redis-cli")
    if exe is None or cli is None:
        sys.exit("redis-server and redis-cli are needed (apt-get install redis-server)")
    procs, ports = [], []
    while len(ports) < masters:
        port = free_port()
        if port + 10000 > 65535 or port in ports:
            continue
        d = Path(workdir) / str(port)
        d.mkdir()
        procs.append(subprocess.Popen([exe, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(d),
                                       "--cluster-enabled", "yes", "--save", "", "--appendonly", "no"],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        ports.append(port)
    for port in ports:
        for _ in range(200):
            try:
                redis.Redis(port=port).ping()
                break
            except redis.ConnectionError:
                time.sleep(0.05)
    subprocess.run([cli, "--cluster", "create", *(f"127.0.0.1:{p}" for p in ports), "--cluster-replicas", "0",
                    "--cluster-yes"], check=True, capture_output=True, timeout=60)
    for _ in range(300):
        if all(redis.Redis(port=p).cluster("info")["cluster_state"] == "ok" for p in ports):
            return procs, ports
        time.sleep(0.1)
    sys.exit("the cluster did not become ok")


def server_state(clients: list[redis.Redis]) -> list[tuple[float, int]]:
    """(main-thread CPU seconds, used_memory bytes) of each master."""
    out = []
    for c in clients:
        cpu, mem = c.info("cpu"), c.info("memory")
        out.append((cpu["used_cpu_sys_main_thread"] + cpu["used_cpu_user_main_thread"], int(mem["used_memory"])))
    return out


def run(url: str, clients: list[redis.Redis], entries: list[Entry], settings: Settings, bulk: bool) -> dict:
    for c in clients:
        c.flushall()
    n = len(entries)
    with open_index(settings, url, namespace="bench") as idx:
        before = server_state(clients)
        total, lat = ingest_timed(idx, entries, settings, bulk)
        after = server_state(clients)
    cpu = [(a[0] - b[0]) / n * 1e6 for a, b in zip(after, before)]
    mem = [(a[1] - b[1]) / n for a, b in zip(after, before)]
    lat = lat or [0.0]
    return {"rate": n / total, "p50": pct(lat, 0.5) * 1e3, "p99": pct(lat, 0.99) * 1e3, "cpu": cpu, "mem": mem}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=3000, help="articles to load (real first, then synthetic)")
    ap.add_argument("--runs", type=int, default=3, help="runs per layout; medians are reported")
    args = ap.parse_args()
    base = Settings()
    entries = signed_entries(args.n, base)
    layouts = ("slot", "spread")
    results: dict[tuple[str, bool], list[dict]] = {(lay, b): [] for lay in layouts for b in (False, True)}
    with tempfile.TemporaryDirectory() as tmp:
        procs, ports = start_cluster(tmp)
        try:
            url = f"redis+cluster://127.0.0.1:{ports[0]}"
            clients = [redis.Redis(port=p) for p in ports]
            for r in range(args.runs):
                for lay in layouts:
                    settings = dataclasses.replace(base, redis_layout=lay)
                    for bulk in (False, True):
                        results[(lay, bulk)].append(run(url, clients, entries, settings, bulk))
                print(f"run {r + 1}: " + ", ".join(f"{lay} {'bulk' if b else 'streaming'} {rows[-1]['rate']:.0f}/s"
                                                  for (lay, b), rows in results.items()))
            for c in clients:
                c.close()
        finally:
            for p in procs:
                p.terminate()
            for p in procs:
                p.wait()

    def med(rows: list[dict], k: str, i: int | None = None) -> float:
        return statistics.median(r[k] if i is None else r[k][i] for r in rows)

    print(f"\nN={len(entries)}, 3 masters on this machine, medians of {args.runs} runs")
    print(f"{'':22}{'art/s':>8}{'p50 ms':>8}{'p99 ms':>8}   server CPU us/article per master (share)"
          f"     bytes/article per master (share)")
    for (lay, bulk), rows in results.items():
        cpu = [med(rows, "cpu", i) for i in range(len(ports))]
        mem = [med(rows, "mem", i) for i in range(len(ports))]
        lat = "" if bulk else f"{med(rows, 'p50'):8.2f}{med(rows, 'p99'):8.2f}"
        print(f"{lay + (' bulk' if bulk else ' streaming'):22}{med(rows, 'rate'):8.0f}{lat:16}   "
              + " ".join(f"{c:5.0f} ({c / sum(cpu):4.0%})" for c in cpu) + "   "
              + " ".join(f"{m:6.0f} ({m / sum(mem):4.0%})" for m in mem))
    for bulk in (False, True):
        s, p = results[("slot", bulk)], results[("spread", bulk)]
        scpu = [med(s, "cpu", i) for i in range(len(ports))]
        pcpu = [med(p, "cpu", i) for i in range(len(ports))]
        print(f"{'bulk' if bulk else 'streaming'}: spread/slot speed {med(p, 'rate') / med(s, 'rate'):.2f}x, "
              f"server CPU summed over the masters {sum(pcpu) / sum(scpu):.2f}x, "
              f"busiest master's CPU {max(pcpu) / max(scpu):.2f}x (its share {max(pcpu) / sum(pcpu):.0%} vs "
              f"{max(scpu) / sum(scpu):.0%})")


if __name__ == "__main__":
    main()
