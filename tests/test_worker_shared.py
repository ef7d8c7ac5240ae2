"""Several worker processes sharing one Redis index (``--redis``).

These need the shared index, ``dedup/index/redis.py``; until it lands they
fail (the worker reports "--redis needs the Redis index").
"""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import redis
from click.testing import CliRunner

from dedup.cli import cli
from dedup.service import Deduper
from .test_worker import article, outputs, pending, spawn, wait_for, xadd_all


def spawn_shared(url: str, *args: str):
    return spawn(url, "--redis", url, "--namespace", "shared", *args)


def test_two_workers_share_one_index(redis_url, seed_paths):
    res = CliRunner().invoke(cli, ["enqueue", "--redis", redis_url, *seed_paths])
    assert res.exit_code == 0, res.output
    xadd_all(redis_url, [json.dumps(article(i, words=60)).encode() for i in range(60)])
    procs = [spawn_shared(redis_url, "--burst", "--batch-size", "3", "--consumer", f"w{i}") for i in range(2)]
    for p in procs:
        _, err = p.communicate(timeout=90)
        assert p.returncode == 0, err.decode()[-2000:]
    rows = outputs(redis_url)
    ids = {r["id"] for r in rows}
    assert ids == {Path(p).stem for p in seed_paths} | {f"art-{i}" for i in range(60)}
    consumers = {c["name"] for c in redis.Redis.from_url(redis_url, decode_responses=True)
                 .xinfo_consumers("dedup:in", "dedup")}
    assert consumers == {"w0", "w1"}
    with Deduper(url=redis_url, namespace="shared") as dd:  # both wrote into one index
        assert dd.story_of("000_e9c91ff9978c02d9") == dd.story_of("001_4d4ee5db411d55be")
        assert all(dd.story_of(f"art-{i}") is not None for i in range(60))
    assert pending(redis_url) == 0


def test_killed_workers_messages_are_claimed_by_a_live_one(redis_url):
    n = 120
    xadd_all(redis_url, [json.dumps(article(i, words=300)).encode() for i in range(n)])
    victim = spawn_shared(redis_url, "--batch-size", "40", "--consumer", "victim")
    wait_for(lambda: pending(redis_url) > 0 or victim.poll() is not None, what="victim to read a batch")
    assert victim.poll() is None, victim.communicate()[1].decode()[-2000:]
    victim.send_signal(signal.SIGKILL)
    victim.communicate(timeout=10)
    assert pending(redis_url) > 0  # read, never acknowledged
    time.sleep(0.6)
    rescuer = spawn_shared(redis_url, "--burst", "--claim-idle-ms", "500", "--consumer", "rescuer")
    _, err = rescuer.communicate(timeout=90)
    assert rescuer.returncode == 0, err.decode()[-2000:]
    assert b"claimed" in err
    assert {r["id"] for r in outputs(redis_url)} == {f"art-{i}" for i in range(n)}
    assert pending(redis_url) == 0
