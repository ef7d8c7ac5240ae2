"""The Redis index on a server with a memory limit, against a real redis-server with ``maxmemory 4mb``.

``noeviction``: a full server refuses writes; the CLI stops with one line naming maxmemory and the fix,
the index stays consistent (a later run with more memory ends with the in-process partition), and the
worker leaves what it could not write unacknowledged until memory is freed.  A policy that may evict the
index's keys (``allkeys-*``) is refused on open unless the operator allows it.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
import time
from collections import defaultdict

import pytest
import redis

from .conftest import ROOT, data_file, fill_memory
from dedup.index.redis.errors import EvictionUnsafe, IndexFull, acl_rule
from dedup.readers import read_paths
from dedup.service import Deduper
from dedup.settings import Settings
from dedup.streams import connect
from dedup.worker import Worker, WorkerSettings


def partition(story_of: dict[str, str]) -> set[frozenset[str]]:
    groups: dict[str, set[str]] = defaultdict(set)
    for aid, story in story_of.items():
        groups[story].add(aid)
    return {frozenset(g) for g in groups.values()}


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    full = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    full.pop("DEDUP_REDIS_URL", None)
    return subprocess.run([sys.executable, "-m", "dedup", *args], capture_output=True, text=True, env=full,
                          timeout=600)


def one_line_error(out: subprocess.CompletedProcess) -> str:
    """The CLI failed with one line on stderr, no traceback; returns it."""
    assert out.returncode != 0
    assert "Traceback" not in out.stderr, out.stderr
    errors = [line for line in out.stderr.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1 and out.stderr.strip().splitlines()[-1] == errors[0], out.stderr
    return errors[0]


@pytest.fixture(scope="module")
def meter():
    """METER dev (1,024 articles, ~2 MB of text): more than a 4 MB server holds as an index."""
    return str(data_file("meter-dev.jsonl"))


@pytest.fixture(scope="module")
def in_process(meter):
    dd = Deduper()
    ids = [o.assignment.article_id for o in dd.add_many(read_paths([meter]))]
    return partition(dd.index.story_of(ids))


@pytest.mark.parametrize("layout", ["slot", "spread"])
def test_a_full_server_stops_the_cli_with_one_line_and_a_later_run_ends_like_in_process(
        small_redis, meter, in_process, layout):
    url = small_redis.url
    client = redis.Redis.from_url(url)
    client.set("other-data", b"x" * 1_000_000)  # the server holds more than the index (the spread layout's
    # copy of METER alone would about fit in 4 MB)
    args = ["cluster", "--format", "jsonl", "--redis", url, "--namespace", "full", "--redis-layout", layout, meter]
    line = one_line_error(cli(*args))
    assert "out of memory" in line and "maxmemory of 4.00M" in line and "noeviction" in line
    assert "CONFIG SET maxmemory" in line and "namespace 'full'" in line

    stored = client.get("{full}:n")
    assert stored is not None and 0 < int(stored) < 1024, "the run stopped part way"
    client.config_set("maxmemory", "0")
    client.close()
    out = cli(*args)
    assert out.returncode == 0, out.stderr
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    actions = {r["action"] for r in rows}
    assert "unchanged" in actions, "what the first run stored is complete: the second finds it as it was"
    assert partition({r["id"]: r["cluster"] for r in rows}) == in_process
    with Deduper(Settings(redis_layout=layout), url=url, namespace="full") as dd:
        assert len(dd.index) == len(rows)
        assert partition(dd.index.story_of([r["id"] for r in rows])) == in_process


def test_writes_refused_for_memory_are_reported_as_index_full(small_redis, seed_paths):
    client = redis.Redis.from_url(small_redis.url)
    with Deduper(url=small_redis.url, namespace="seeds") as dd:
        fill_memory(small_redis.url)
        with pytest.raises(IndexFull, match="maxmemory"):
            list(dd.add_many(read_paths(seed_paths)))
        assert len(dd.index) == 0, "the refused write stored nothing"
        client.delete(*client.keys("filler:*"))
        assert [o.assignment.action for o in dd.add_many(read_paths(seed_paths))].count("new") >= 1
    client.close()


def test_the_worker_leaves_unwritten_messages_pending_and_goes_on_when_memory_frees(
        small_redis, redis_url, seed_paths, caplog):
    """Index on a full server, streams on another: no ack and a clear log line while full, every message
    processed once maxmemory is raised."""
    caplog.set_level(logging.INFO, logger="dedup.worker")
    index = redis.Redis.from_url(small_redis.url)
    streams = redis.Redis.from_url(redis_url)
    Deduper(url=small_redis.url, namespace="w").close()  # claimed (a new namespace is a write)
    fill_memory(small_redis.url)
    dd = Deduper(url=small_redis.url, namespace="w")  # opening a claimed one only reads
    worker = Worker(dd, connect(redis_url, 100), WorkerSettings(block_ms=100, backoff_max_s=0.3),
                    install_signals=False)
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    try:
        articles = [a for a in read_paths(seed_paths)]
        enqueue = streams.pipeline(transaction=True)  # all at once: the worker reads them as one batch
        for a in articles:
            enqueue.xadd("dedup:in", {"article": json.dumps({"id": a.id, "text": a.text, "title": a.title})})
        enqueue.execute()

        def wait(what, timeout: float = 30):
            deadline = time.monotonic() + timeout
            while not what():
                assert time.monotonic() < deadline, "timed out"
                time.sleep(0.05)

        wait(lambda: sum("out of memory" in r.getMessage() for r in caplog.records) >= 2)
        full = [r.getMessage() for r in caplog.records if "out of memory" in r.getMessage()]
        assert "maxmemory" in full[0] and "stays unacknowledged" in full[0]
        assert streams.xpending("dedup:in", "dedup")["pending"] == len(articles)
        assert streams.xlen("dedup:out") == 0 and not streams.exists("dedup:dead")
        assert not streams.hlen("dedup:in:attempts"), "a full server costs no attempt"
        index.config_set("maxmemory", "0")
        wait(lambda: streams.xpending("dedup:in", "dedup")["pending"] == 0)
        outs = {f[b"id"].decode() for _, f in streams.xrange("dedup:out")}
        assert outs == {a.id for a in articles}
        assert len(dd.index) == len(articles)
    finally:
        worker.request_stop()
        thread.join(timeout=30)
        dd.close()
        index.close()
        streams.close()
    assert not thread.is_alive()


# -- eviction policies ----------------------------------------------------------------------------------
@pytest.mark.parametrize("policy", ["allkeys-lru", "allkeys-lfu", "allkeys-random"])
def test_a_policy_that_evicts_the_index_is_refused_on_open(small_redis, seed_paths, policy):
    client = redis.Redis.from_url(small_redis.url)
    client.config_set("maxmemory-policy", policy)
    for layout in ("slot", "spread"):
        with pytest.raises(EvictionUnsafe) as err:
            Deduper(Settings(redis_layout=layout), url=small_redis.url, namespace="ev")
        assert policy in str(err.value) and "CONFIG SET maxmemory-policy noeviction" in str(err.value)
    assert client.keys("*") == [], "refused before writing anything"
    line = one_line_error(cli("cluster", "--redis", small_redis.url, "--namespace", "ev", *seed_paths))
    assert policy in line and "--redis-allow-eviction (DEDUP_REDIS_ALLOW_EVICTION=true)" in line
    client.close()


def test_the_operator_may_allow_an_evicting_policy(small_redis, seed_paths, caplog):
    client = redis.Redis.from_url(small_redis.url)
    client.config_set("maxmemory-policy", "allkeys-lru")
    caplog.set_level(logging.WARNING, logger="dedup.index")
    with Deduper(Settings(redis_allow_eviction=True), url=small_redis.url, namespace="ev") as dd:
        assert len(list(dd.add_many(read_paths(seed_paths)))) == len(seed_paths)
    assert any("allkeys-lru" in r.getMessage() for r in caplog.records)
    for args, env in [(["--redis-allow-eviction"], {}), ([], {"DEDUP_REDIS_ALLOW_EVICTION": "true"})]:
        out = cli("cluster", "--redis", small_redis.url, "--namespace", "ev2", *args, *seed_paths, env=env)
        assert out.returncode == 0, out.stderr
        assert "allkeys-lru" in out.stderr  # the warning, one line
    client.close()


@pytest.mark.parametrize("policy", ["noeviction", "volatile-lru", "volatile-ttl"])
def test_policies_that_leave_the_index_alone_open_without_a_word(small_redis, seed_paths, caplog, policy):
    """The index sets no expiry on its keys, so volatile-* policies never evict them."""
    client = redis.Redis.from_url(small_redis.url)
    client.config_set("maxmemory-policy", policy)
    caplog.set_level(logging.WARNING, logger="dedup.index")
    with Deduper(url=small_redis.url, namespace="ok") as dd:
        list(dd.add_many(read_paths(seed_paths)))
        assert all(client.ttl(k) == -1 for k in client.keys("*")), "no key of the index expires"
    assert not caplog.records
    client.close()


def test_a_server_that_hides_its_policy_is_used_with_a_warning(small_redis, seed_paths, caplog):
    """A managed Redis may refuse INFO and CONFIG: the policy cannot be checked, which is said once."""
    client = redis.Redis.from_url(small_redis.url)
    client.config_set("maxmemory-policy", "allkeys-lru")
    client.execute_command("ACL", "SETUSER", "managed", "on", ">m4n4ged-pw",
                           *acl_rule("managed").replace(" +info", "").split())
    caplog.set_level(logging.WARNING, logger="dedup.index")
    url = small_redis.url.replace("redis://", "redis://managed:m4n4ged-pw@")
    with Deduper(url=url, namespace="managed") as dd:
        assert len(list(dd.add_many(read_paths(seed_paths)))) == len(seed_paths)
    (warning,) = [r.getMessage() for r in caplog.records]
    assert "cannot read the maxmemory-policy" in warning and "noeviction" in warning
    assert "m4n4ged-pw" not in warning and "redis://managed:***@" in warning
    client.close()
