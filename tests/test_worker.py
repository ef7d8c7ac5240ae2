"""The stream worker against a real redis-server: clustering, dead letters, redelivery, shutdown, restarts.

Single-worker tests inject a Deduper with the in-process index, so they need
no shared Redis index; subprocess tests run ``python worker.py`` /
``python -m dedup worker`` with ``--streams-url`` only (in-process index).
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest
import redis
from click.testing import CliRunner

from .conftest import ROOT, RedisServer, free_port
from dedup.cli import cli
from dedup.service import Deduper
from dedup.settings import Settings
from dedup.streams import connect
from dedup.worker import Worker, WorkerSettings

WORDS = ("minister council harbour strike vaccine railway budget election senator drought reactor tariff "
         "festival merger satellite glacier verdict refinery bishop cyclone embassy orchestra airline bakery "
         "museum parliament wildfire pension lottery stadium surgeon telescope tribunal umpire volcano").split()


def article(i: int, words: int = 80, seed: int = 0) -> dict:
    """A synthetic article that is its own story (random words plus unique tokens)."""
    rng = random.Random(i * 7919 + seed)
    body = " ".join(rng.choice(WORDS) for _ in range(words))
    return {"id": f"art-{i}", "title": f"Report number {i} zq{i}x", "text": f"Token zq{i}x and kv{i}w. {body}."}


def xadd_all(url: str, payloads: list[bytes], stream: str = "dedup:in") -> list[bytes]:
    client = redis.Redis.from_url(url)
    ids = [client.xadd(stream, {b"article": p}) for p in payloads]
    client.close()
    return ids


def outputs(url: str, stream: str = "dedup:out") -> list[dict[str, str]]:
    client = redis.Redis.from_url(url, decode_responses=True)
    rows = [fields for _, fields in client.xrange(stream)]
    client.close()
    return rows


def dead_letters(url: str) -> list[dict[bytes, bytes]]:
    client = redis.Redis.from_url(url)
    rows = [fields for _, fields in client.xrange("dedup:dead")]
    client.close()
    return rows


def pending(url: str, stream: str = "dedup:in", group: str = "dedup") -> int:
    client = redis.Redis.from_url(url)
    try:
        return client.xpending(stream, group)["pending"]
    except redis.exceptions.ResponseError:  # no group yet: nothing read
        return 0
    finally:
        client.close()


def run_burst(url: str, dd: Deduper | None = None, **ws) -> Worker:
    """Drain the input stream with an in-process worker (injected Deduper, no signal handlers)."""
    ws.setdefault("block_ms", 100)
    ws.setdefault("backoff_max_s", 0.2)
    worker = Worker(dd or Deduper(), connect(url), WorkerSettings(**ws), burst=True, install_signals=False)
    assert worker.run() == 0
    return worker


def spawn(url: str, *args: str, entry: tuple[str, ...] = ("worker.py",)) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.Popen([sys.executable, *entry, "--streams-url", url, "--log-level", "INFO", *args],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def wait_for(pred, timeout: float = 20.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


# -- clustering and output ---------------------------------------------------------
def test_good_messages_are_clustered_and_published(redis_url, seed_paths):
    res = CliRunner().invoke(cli, ["enqueue", "--redis", redis_url, *seed_paths])
    assert res.exit_code == 0, res.output
    worker = run_burst(redis_url, with_rank=True)
    rows = outputs(redis_url)
    assert [r["id"] for r in rows] == [Path(p).stem for p in seed_paths]
    assert {r["action"] for r in rows} <= {"new", "joined", "merged"}
    story = {r["id"]: r["story"] for r in rows}
    # the first two seeds are rewrites of one wire story (see seeds/)
    assert story["000_e9c91ff9978c02d9"] == story["001_4d4ee5db411d55be"]
    assert len(set(story.values())) < len(story)
    assert all(r["rank"].isdigit() and int(r["story_size"]) >= 1 for r in rows)
    assert all(r["message_id"] for r in rows)
    assert pending(redis_url) == 0
    assert worker.counts == {"processed": 5, "dead": 0, "retried": 0}


def test_each_output_names_the_articles_event_and_the_events_it_joined(redis_url, seed_paths):
    """002 and 003 are independent reports of one meeting: two stories, one event.  Sent one batch apart,
    003's links join 002's event, named after the smaller story id; a consumer relabels event 003 as 002."""
    by_seed = {Path(p).stem[:3]: p for p in seed_paths}
    dd = Deduper()
    for seed in ("002", "003"):
        assert CliRunner().invoke(cli, ["enqueue", "--redis", redis_url, by_seed[seed]]).exit_code == 0
        run_burst(redis_url, dd)
    first, second = outputs(redis_url)
    assert first["story"] != second["story"]
    assert first["event"] == first["story"] and first["event_merged"] == ""
    event = min(first["story"], second["story"])
    assert second["event"] == event
    assert second["event_merged"] == ",".join(sorted({first["story"], second["story"]} - {event}))
    assert dd.event_of(second["story"]) == (event, sorted([first["story"], second["story"]]))


def test_rank_is_left_out_unless_asked(redis_url):
    xadd_all(redis_url, [json.dumps(article(1)).encode()])
    run_burst(redis_url)
    (row,) = outputs(redis_url)
    assert row["action"] == "new" and row["story"] == "art-1"
    assert "rank" not in row and row["merged"] == ""


# -- dead letters ----------------------------------------------------------------
def test_malformed_messages_are_dead_lettered_and_good_ones_processed(redis_url):
    binary = bytes(range(256)) * 4
    huge = json.dumps({"id": "huge", "text": "word " * 2_000_000}).encode()  # 10 MB body
    bad = {
        "bad_json": b'{"id": "x", "text": ',
        "empty_text": json.dumps({"id": "e", "text": "   "}).encode(),
        "too_large": huge,
        "not_utf8": binary,
        "missing_id": json.dumps({"text": "an article without an id"}).encode(),
        "not_object": b"[1, 2, 3]",
    }
    good = [json.dumps(article(i)).encode() for i in range(4)]
    payloads = [good[0], *list(bad.values())[:3], good[1], *list(bad.values())[3:], good[2], good[3]]
    xadd_all(redis_url, payloads)
    client = redis.Redis.from_url(redis_url)
    client.xadd("dedup:in", {b"body": b"wrong field"})
    client.close()

    run_burst(redis_url)

    assert sorted(r["id"] for r in outputs(redis_url)) == [f"art-{i}" for i in range(4)]
    dead = dead_letters(redis_url)
    by_reason = {d[b"reason"].decode(): d for d in dead}
    assert set(by_reason) == set(bad) | {"missing_field"}
    for reason, payload in bad.items():
        assert by_reason[reason][b"payload"] == payload, reason  # original bytes, even binary ones
        assert by_reason[reason][b"attempts"] == b"1"
        assert by_reason[reason][b"message_id"]
    assert b"body" in by_reason["missing_field"][b"payload"]
    assert pending(redis_url) == 0  # dead letters are acknowledged too


def test_text_over_max_chars_is_dead_lettered_by_the_core_limit(redis_url):
    xadd_all(redis_url, [json.dumps({"id": "long", "text": "word " * 400}).encode(),
                         json.dumps(article(1, words=20)).encode()])
    run_burst(redis_url, Deduper(Settings(max_chars=1000)))
    (dead,) = dead_letters(redis_url)
    assert dead[b"reason"] == b"too_large" and b"over the limit" in dead[b"detail"]
    assert [r["id"] for r in outputs(redis_url)] == ["art-1"]


class FlakyDeduper(Deduper):
    """Fails on chosen ids: ``flaky`` twice then works, ``poison`` always."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: dict[str, int] = {}

    def add(self, art):
        self.calls[art.id] = self.calls.get(art.id, 0) + 1
        if art.id == "poison" or (art.id == "flaky" and self.calls[art.id] <= 2):
            raise redis.exceptions.ResponseError("OOM command not allowed when used memory > 'maxmemory'")
        return super().add(art)

    def add_many(self, items, report_events=False):
        """The worker clusters a batch at once: a failing article fails the batch call, and the worker
        then finds the culprit one message at a time (through add)."""
        items = list(items)
        if any(a.id == "poison" or (a.id == "flaky" and self.calls.get(a.id, 0) < 2) for a in items):
            raise redis.exceptions.ResponseError("OOM command not allowed when used memory > 'maxmemory'")
        for a in items:
            self.calls[a.id] = self.calls.get(a.id, 0) + 1
        return super().add_many(items, report_events)


def test_transient_failures_are_retried_then_dead_lettered(redis_url):
    flaky = dict(article(1), id="flaky")
    poison = dict(article(2), id="poison")
    xadd_all(redis_url, [json.dumps(x).encode() for x in (flaky, poison, article(3))])
    dd = FlakyDeduper()
    worker = run_burst(redis_url, dd, max_attempts=3)
    assert sorted(r["id"] for r in outputs(redis_url)) == ["art-3", "flaky"]
    (dead,) = dead_letters(redis_url)
    assert dead[b"reason"] == b"failed" and dead[b"attempts"] == b"3" and b"OOM" in dead[b"detail"]
    assert dd.calls == {"flaky": 3, "poison": 3, "art-3": 1}
    assert worker.counts["retried"] == 4  # flaky twice, poison twice before its third, fatal, attempt
    assert pending(redis_url) == 0
    assert redis.Redis.from_url(redis_url).hlen("dedup:in:attempts") == 0  # no leftovers


class LostIndexDeduper(Deduper):
    """The index's Redis drops the connection on the first five writes (more than max_attempts)."""

    def __init__(self) -> None:
        super().__init__()
        self.failures = 0

    def add(self, art):
        if self.failures < 5:
            self.failures += 1
            raise redis.exceptions.ConnectionError("Error 111 connecting to index: Connection refused")
        return super().add(art)

    def add_many(self, items, report_events=False):
        if self.failures < 5:
            self.failures += 1
            raise redis.exceptions.ConnectionError("Error 111 connecting to index: Connection refused")
        return super().add_many(items, report_events)


def test_lost_index_connection_costs_no_attempt(redis_url):
    xadd_all(redis_url, [json.dumps(article(i)).encode() for i in range(2)])
    dd = LostIndexDeduper()
    run_burst(redis_url, dd, max_attempts=2, backoff_max_s=0.05)
    assert dd.failures == 5
    assert dead_letters(redis_url) == []  # not the messages' fault: waited, reconnected, redelivered
    assert sorted(r["id"] for r in outputs(redis_url)) == ["art-0", "art-1"]
    assert pending(redis_url) == 0


def test_message_that_keeps_crashing_workers_is_dead_lettered_as_poison(redis_url):
    ids = xadd_all(redis_url, [json.dumps(article(i)).encode() for i in range(3)])
    client = redis.Redis.from_url(redis_url)
    client.xgroup_create("dedup:in", "dedup", id="0")
    client.xreadgroup("dedup", "crashy", {"dedup:in": ">"}, count=1)  # takes art-0 ...
    for _ in range(11):  # ... and "crashes" on it again and again after each restart
        client.xreadgroup("dedup", "crashy", {"dedup:in": "0"}, count=1)
    time.sleep(0.1)
    run_burst(redis_url, claim_idle_ms=50, max_deliveries=10)
    (dead,) = dead_letters(redis_url)
    assert dead[b"reason"] == b"poison" and dead[b"message_id"] == ids[0] and dead[b"attempts"] == b"13"
    assert sorted(r["id"] for r in outputs(redis_url)) == ["art-1", "art-2"]
    assert pending(redis_url) == 0
    client.close()


def test_unexpected_error_outside_a_message_exits_1_and_keeps_messages(redis_url):
    xadd_all(redis_url, [json.dumps(article(1)).encode()])
    client = redis.Redis.from_url(redis_url)
    client.set("dedup:out", "not a stream")  # WRONGTYPE when publishing: a deployment error, not bad input
    worker = Worker(Deduper(), connect(redis_url), WorkerSettings(block_ms=100), burst=True, install_signals=False)
    assert worker.run() == 1
    assert pending(redis_url) == 1  # read, not acknowledged: redelivered once the deployment is fixed
    client.delete("dedup:out")
    worker = Worker(worker.dd, connect(redis_url), WorkerSettings(block_ms=100, consumer=worker.consumer),
                    burst=True, install_signals=False)
    assert worker.run() == 0
    assert [r["id"] for r in outputs(redis_url)] == ["art-1"] and pending(redis_url) == 0
    client.close()


# -- at-least-once and idempotency ---------------------------------------------------
def test_redelivery_after_a_lost_ack_is_idempotent(redis_url):
    """The index write happens, the ack is lost: the redelivered message changes nothing."""
    xadd_all(redis_url, [json.dumps(article(i)).encode() for i in range(3)])
    dd = Deduper()
    worker = Worker(dd, connect(redis_url), WorkerSettings(block_ms=100, backoff_max_s=0.1), burst=True,
                    install_signals=False)
    real_pipeline = worker.client.pipeline
    made = []

    def pipeline(*a, **k):
        pipe = real_pipeline(*a, **k)
        made.append(pipe)
        if len(made) == 2:  # the first batch is published (pipeline 1) but its ack (pipeline 2) is lost
            def boom():
                raise redis.exceptions.ConnectionError("connection reset by peer")
            pipe.execute = boom
        return pipe

    worker.client.pipeline = pipeline
    assert worker.run() == 0
    assert len(made) >= 4
    rows = outputs(redis_url)
    assert sorted(r["id"] for r in rows) == ["art-0", "art-0", "art-1", "art-1", "art-2", "art-2"]
    assert [r["action"] for r in rows] == ["new"] * 3 + ["unchanged"] * 3  # redelivered: already in the index
    assert {r["story"] for r in rows} == {"art-0", "art-1", "art-2"}
    assert len(dd.index) == 3 and pending(redis_url) == 0

    # the same article enqueued again, then a new version of it
    again = article(1)
    changed = dict(article(1), text=article(1)["text"] + " A correction was appended to this report today.")
    xadd_all(redis_url, [json.dumps(again).encode(), json.dumps(changed).encode()])
    run_burst(redis_url, dd)
    assert [r["action"] for r in outputs(redis_url)[6:]] == ["unchanged", "replaced"]
    assert len(dd.index) == 3


def test_dead_consumers_pending_messages_are_claimed(redis_url):
    xadd_all(redis_url, [json.dumps(article(i)).encode() for i in range(3)])
    client = redis.Redis.from_url(redis_url)
    client.xgroup_create("dedup:in", "dedup", id="0")
    got = client.xreadgroup("dedup", "crashed-worker", {"dedup:in": ">"}, count=10)
    assert len(got[0][1]) == 3  # read, never acknowledged: that consumer died

    # not idle long enough yet: a burst worker leaves them alone
    run_burst(redis_url, claim_idle_ms=60_000)
    assert outputs(redis_url) == [] and pending(redis_url) == 3

    time.sleep(0.15)
    run_burst(redis_url, claim_idle_ms=100, consumer="rescuer")
    assert sorted(r["id"] for r in outputs(redis_url)) == ["art-0", "art-1", "art-2"]
    assert pending(redis_url) == 0
    client.close()


# -- process lifecycle ---------------------------------------------------------------
@pytest.mark.parametrize("entry", [("worker.py",), ("-m", "dedup", "worker")], ids=["worker.py", "dedup-worker"])
def test_burst_drains_and_exits(redis_url, entry):
    xadd_all(redis_url, [json.dumps(article(i, words=30)).encode() for i in range(25)] + [b"not json"])
    proc = spawn(redis_url, "--burst", "--batch-size", "7", entry=entry)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err.decode()
    assert len(outputs(redis_url)) == 25 and len(dead_letters(redis_url)) == 1
    assert pending(redis_url) == 0
    assert b"article art-24 -> story art-24 (new)" in err  # logs name the article


def test_sigterm_finishes_current_batch_and_exits_0(redis_url):
    n = 400
    xadd_all(redis_url, [json.dumps(article(i, words=300)).encode() for i in range(n)])
    proc = spawn(redis_url, "--batch-size", "25", "--block-ms", "5000")
    wait_for(lambda: len(outputs(redis_url)) > 0, what="first output")
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err.decode()
    done = outputs(redis_url)
    assert 0 < len(done) < n, "stopped after the batch in hand, not after the whole stream"
    assert len(done) % 25 == 0  # whole batches only
    assert pending(redis_url) == 0  # everything read was finished and acknowledged
    assert b"finishing current work" in err


def test_sigterm_while_idle_exits_promptly(redis_url):
    proc = spawn(redis_url, "--block-ms", "1000")
    client = redis.Redis.from_url(redis_url)
    wait_for(lambda: client.exists("dedup:in") and client.xinfo_consumers("dedup:in", "dedup"), what="worker to read")
    time.sleep(0.2)
    start = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=10)
    assert proc.returncode == 0
    assert time.monotonic() - start < 2.5, "an idle worker stops within one blocking read"
    client.close()


def test_second_signal_exits_at_once(redis_url):
    xadd_all(redis_url, [json.dumps(article(i, words=400)).encode() for i in range(300)])
    proc = spawn(redis_url, "--batch-size", "300")
    client = redis.Redis.from_url(redis_url)
    wait_for(lambda: pending(redis_url) > 0, what="batch to be read")
    proc.send_signal(signal.SIGINT)
    time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=10)
    assert proc.returncode == 128 + signal.SIGINT
    assert pending(redis_url) == 300  # nothing acknowledged: it all stays for redelivery
    client.close()


def test_redis_restart_mid_stream_loses_nothing(tmp_path):
    server = RedisServer(tmp_path / "aof", None, "--appendonly", "yes", "--appendfsync", "always").start()
    try:
        n = 300
        ids = xadd_all(server.url, [json.dumps(article(i, words=200)).encode() for i in range(n)])
        assert len(ids) == n
        proc = spawn(server.url, "--burst", "--batch-size", "10", "--backoff-max-s", "0.5")
        wait_for(lambda: len(outputs(server.url)) >= 20, what="worker to get going")
        server.stop(kill=True)  # SIGKILL: no graceful save, only the AOF survives
        time.sleep(1.0)
        server.start()
        out, err = proc.communicate(timeout=90)
        assert proc.returncode == 0, err.decode()[-3000:]
        assert b"reconnected to Redis" in err
        rows = outputs(server.url)
        assert {r["id"] for r in rows} == {f"art-{i}" for i in range(n)}
        assert {r["action"] for r in rows} <= {"new", "unchanged"}
        assert dead_letters(server.url) == [] and pending(server.url) == 0
    finally:
        server.stop()


# -- observability -----------------------------------------------------------------
def test_metrics_endpoint_counts_processed_and_dead(redis_url):
    xadd_all(redis_url, [json.dumps(article(1)).encode(), b"{oops", json.dumps(article(2)).encode()])
    port = free_port()
    worker = Worker(Deduper(), connect(redis_url), WorkerSettings(block_ms=100, metrics_port=port),
                    install_signals=False)
    thread = threading.Thread(target=worker.run)
    thread.start()
    try:
        wait_for(lambda: worker.counts["processed"] == 2 and worker.counts["dead"] == 1, what="processing")
        time.sleep(2.2)  # next lag refresh
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    finally:
        worker.request_stop()
        thread.join(timeout=10)
    assert not thread.is_alive()
    assert 'dedup_worker_processed_total{action="new"} 2.0' in text
    assert 'dedup_worker_dead_lettered_total{reason="bad_json"} 1.0' in text
    assert "dedup_worker_ingest_latency_seconds_count 2.0" in text, text
    assert "dedup_worker_lag 0.0" in text


# -- enqueue -------------------------------------------------------------------------
def test_enqueue_reports_bad_items_and_can_include_them(redis_url, tmp_path):
    feed = tmp_path / "feed.jsonl"
    lines = [json.dumps(article(1)), '{"id": "broken", ', json.dumps({"id": "blank", "text": ""}),
             json.dumps(article(2))]
    feed.write_text("\n".join(lines) + "\n")
    res = CliRunner().invoke(cli, ["enqueue", "--redis", redis_url, str(feed)])
    assert res.exit_code == 1
    assert f"{feed}:2: malformed JSON" in res.output and f"{feed}:3 (id blank): empty text" in res.output
    client = redis.Redis.from_url(redis_url)
    assert client.xlen("dedup:in") == 2

    res = CliRunner().invoke(cli, ["enqueue", "--redis", redis_url, "--include-bad", "--input-stream", "other",
                                   str(feed)])
    assert res.exit_code == 0, res.output
    assert client.xlen("other") == 4
    run_burst(redis_url, input_stream="other")
    dead = {d[b"reason"]: d[b"payload"] for d in dead_letters(redis_url)}
    assert dead == {b"bad_json": lines[1].encode(), b"empty_text": lines[2].encode()}
    client.close()


def test_worker_settings_come_from_flags_and_env(redis_url):
    from dedup.cli import worker_command

    ctx = worker_command.make_context("worker", ["--batch-size", "5", "--with-rank"],
                                      default_map=None)
    ws = WorkerSettings.from_values(ctx.params)
    assert ws.batch_size == 5 and ws.with_rank and ws.input_stream == "dedup:in"
    os.environ["DEDUP_GROUP"] = "g2"
    try:
        ctx = worker_command.make_context("worker", [])
        assert WorkerSettings.from_values(ctx.params).group == "g2"
    finally:
        del os.environ["DEDUP_GROUP"]
    with pytest.raises(ValueError):
        WorkerSettings(batch_size=0)


def test_docs_describe_every_setting_field_and_reason():
    doc = (ROOT / "docs" / "worker.md").read_text()
    for f in WorkerSettings.declared():
        assert WorkerSettings.env_name(f.name) in doc, f.name
    for code in ("bad_json", "not_utf8", "not_object", "missing_field", "missing_id", "empty_text", "too_large",
                 "failed", "poison"):
        assert f"`{code}`" in doc, code
    from dedup.records import Assignment
    from dedup.streams import assignment_fields, dead_fields

    for name in assignment_fields(Assignment("a", "s", "new"), b"1-0", rank=1, story_size=1):
        assert f"| `{name.decode()}` |" in doc, name
    for name in dead_fields("x", "y", {b"article": b"z"}, b"1-0", 1, "c"):
        assert f"| `{name.decode()}` |" in doc, name


def test_enqueue_from_stdin_names_the_line(redis_url):
    feed = json.dumps(article(5)) + "\n\xff not json\n"
    res = CliRunner().invoke(cli, ["enqueue", "--redis", redis_url, "--include-bad", "-"], input=feed.encode())
    assert res.exit_code == 0, res.output
    assert "<stdin>:2: malformed JSON" in res.output
    run_burst(redis_url)
    assert [r["id"] for r in outputs(redis_url)] == ["art-5"]
    (dead,) = dead_letters(redis_url)
    assert dead[b"reason"] == b"bad_json" and dead[b"payload"] == "\xff not json".encode()


# -- on a Redis Cluster --------------------------------------------------------------
def test_workers_on_a_redis_cluster_index_and_stream_there(redis_cluster, seed_paths, tmp_path):
    """Streams and index on one 3-master cluster: enqueue, two burst workers, the one-process stories.
    The streams share a hash tag (the worker's MULTIs need one slot); the index is the spread layout."""
    import itertools

    from dedup.readers import read_paths

    from .conftest import data_file

    url, _ = redis_cluster
    names = ["--input-stream", "{wk}:in", "--output-stream", "{wk}:out", "--dead-stream", "{wk}:dead"]
    feed = tmp_path / "feed.jsonl"
    lines = data_file("meter-dev.jsonl").read_text(encoding="utf-8").splitlines()[:120]
    feed.write_text("\n".join(lines) + "\n", encoding="utf-8")
    res = CliRunner().invoke(cli, ["enqueue", "--redis", url, "--input-stream", "{wk}:in", *seed_paths, str(feed)])
    assert res.exit_code == 0, res.output
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    procs = [subprocess.Popen([sys.executable, "-m", "dedup", "worker", "--redis", url, "--namespace", "wk",
                               "--burst", "--batch-size", "8", "--block-ms", "200", "--consumer", f"w{n}", *names],
                              cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE) for n in range(2)]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err.decode()
    from redis.cluster import RedisCluster

    client = RedisCluster.from_url("redis://" + url[len("redis+cluster://"):], decode_responses=True)
    rows = [fields for _, fields in client.xrange("{wk}:out")]
    assert client.xpending("{wk}:in", "dedup")["pending"] == 0 and client.xlen("{wk}:dead") == 0
    client.close()
    items = list(itertools.chain(read_paths(seed_paths), read_paths([str(feed)])))
    assert sorted(r["id"] for r in rows) == sorted(a.id for a in items)  # each published once
    one = Deduper()
    for a in items:
        one.add(a)
    ids = [a.id for a in items]
    with Deduper(url=url, namespace="wk") as shared:
        got = shared.index.story_of(ids)
    want = one.index.story_of(ids)
    assert {frozenset(i for i in ids if got[i] == s) for s in got.values()} == \
        {frozenset(i for i in ids if want[i] == s) for s in want.values()}


def test_a_worker_on_a_cluster_refuses_streams_in_different_slots(redis_cluster):
    url, _ = redis_cluster
    res = CliRunner().invoke(cli, ["worker", "--redis", url, "--burst"])
    assert res.exit_code == 2 and "must share one hash tag" in res.output and "{dedup}:in" in res.output
