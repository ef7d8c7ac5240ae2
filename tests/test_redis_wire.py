"""The Redis index's own connection for script calls: pipelining, fallbacks to the redis-py client, recovery."""

from __future__ import annotations

import threading
import time

import pytest
import redis

from dedup.index.redis.codec import CODEC_VERSION
from dedup.index.redis.slot import RedisIndex
from dedup.index.redis.connection import PipelineBroken, ScriptsMissing
from dedup.settings import Settings
from dedup.stories import assign

from .conftest import direct_calls
from .test_index_redis import entry

SETTINGS = Settings()


def unknown_script(direct, like: str = "FIND") -> None:
    """A call named BOOM whose digest the server does not know (answered NOSCRIPT)."""
    direct._heads["BOOM"] = (b"EVALSHA", "0" * 40, *direct._heads[like][2:])


def server_side(url: str, conn) -> dict:
    """The server's CLIENT LIST entry of a redis-py connection."""
    host, port = conn._sock.getsockname()[:2]
    admin = redis.Redis.from_url(url)
    try:
        return next(c for c in admin.client_list() if c["addr"] == f"{host}:{port}")
    finally:
        admin.close()


def test_replies_are_what_the_redis_py_client_returns(redis_url):
    with RedisIndex(SETTINGS, url=redis_url, namespace="wire0") as idx:
        assign(idx, entry("a", 1), SETTINGS)
        assign(idx, entry("b", 1), SETTINGS)
        idx.set_story("s", ["a"])
        idx._load_scripts()
        for name, args in (("STORY_OF", ["a", "b", "missing"]), ("RECORDS", ["a", "b"]), ("STORY_OF", [])):
            done, reply = idx._direct.call(name, args)
            assert done
            assert reply == idx._scripts[name](keys=[idx._meta_key], args=[*idx._fixed_args(), *args])
        assert idx._direct.call("STORY_OF", ["a"]) == (True, [b"s"])


def test_the_connection_follows_the_url(redis_url):
    """Made from the client's connection settings: user, password and database of the URL."""
    admin = redis.Redis.from_url(redis_url)
    admin.acl_setuser("wire", enabled=True, passwords=["+s3cret"], keys=["*"], commands=["+@all"])
    url = redis_url.replace("redis://", "redis://wire:s3cret@").rsplit("/", 1)[0] + "/3"
    try:
        with RedisIndex(SETTINGS, url=url, namespace="wireurl") as idx:
            assert assign(idx, entry("a", 1), SETTINGS).action == "new"
            assert idx._direct.call("STORY_OF", ["a"]) == (True, [b"a"])
            seen = server_side(redis_url, idx._direct._conn)
            assert (seen["user"], seen["db"]) == ("wire", "3")
        assert admin.exists("{wireurl}:meta") == 0
        assert redis.Redis.from_url(redis_url.rsplit("/", 1)[0] + "/3").exists("{wireurl}:meta") == 1
    finally:
        admin.acl_deluser("wire")
        admin.close()


def test_scripts_flushed_from_the_server_are_loaded_again(redis_url):
    with RedisIndex(SETTINGS, url=redis_url, namespace="wire1") as idx:
        made = direct_calls(idx)
        assert assign(idx, entry("a", 1), SETTINGS).action == "new"
        redis.Redis.from_url(redis_url).script_flush()
        assert assign(idx, entry("b", 1), SETTINGS).action == "joined"  # NOSCRIPT: through redis-py, which loads it
        assert assign(idx, entry("c", 1), SETTINGS).action == "joined"
        assert made and made[-1] in ("FIND", "INGEST")  # and the direct path works again
        assert idx.story_of(["a", "b", "c"]) == {"a": "a", "b": "a", "c": "a"}


def test_a_killed_connection_falls_back_and_reconnects(redis_url):
    with RedisIndex(SETTINGS, url=redis_url, namespace="wire2") as idx:
        made = direct_calls(idx)
        assert assign(idx, entry("a", 1), SETTINGS).action == "new"
        conn = idx._direct._conn
        killed = server_side(redis_url, conn)
        admin = redis.Redis.from_url(redis_url)
        assert admin.client_kill_filter(_id=killed["id"]) == 1
        admin.close()
        assert assign(idx, entry("b", 1), SETTINGS).action == "joined"
        n = len(made)
        assert assign(idx, entry("c", 5000), SETTINGS).action == "new"
        assert len(made) > n  # on the wire again
        assert server_side(redis_url, idx._direct._conn)["id"] != killed["id"]  # a new connection
        assert idx.story_of(["a", "b", "c"]) == {"a": "a", "b": "a", "c": "c"}
        assert len(idx) == 3


def test_error_replies_raise_what_redis_py_raises(redis_url):
    with RedisIndex(SETTINGS, url=redis_url, namespace="wire3") as idx:
        unknown_script(idx._direct)
        done, _ = idx._direct.call("BOOM", [])
        assert not done  # NOSCRIPT: left to redis-py
        redis.Redis.from_url(redis_url).set("{wire3}:lh", "not a hash")  # every script reads the shard state
        with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
            idx.entries(["a"])  # the first call loads the script (through redis-py)
        with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
            idx._direct.call("RECORDS", ["a"])
        assert idx._direct._pending == 0 and not idx._direct._lock.locked()  # free for the next call


def test_an_argument_redis_py_cannot_encode_is_left_to_it(redis_url):
    with RedisIndex(SETTINGS, url=redis_url, namespace="wire9") as idx:
        idx._load_scripts()
        assert idx._direct.call("STORY_OF", [None]) == (False, None)
        with pytest.raises(redis.DataError):
            idx._run("STORY_OF", None)
        assert idx._direct.call("STORY_OF", ["a"]) == (True, [b""])


def test_pipelined_calls_come_back_in_order_and_free_the_connection(redis_url):
    """send() writes several calls at once; recv() reads their replies one by one (bulk ingest decides a
    chunk between the two); after the last one the connection serves ordinary calls again."""
    with RedisIndex(SETTINGS, url=redis_url, namespace="wire4") as idx:
        idx.put(entry("a", 1))
        idx.set_story("s", ["a"])
        idx.story_of(["a"])  # loads the script
        assert idx._direct.send([("STORY_OF", ["a"]), ("STORY_OF", ["missing"]), ("STORY_OF", ["a", "a"])])
        assert not idx._direct.send([("STORY_OF", ["a"])])  # one batch in flight at a time
        assert idx._direct.call("STORY_OF", ["a"]) == (False, None)  # meanwhile, calls take redis-py's route
        assert idx._direct.recv() == [b"s"]
        assert idx._direct.recv() == [b""]
        assert idx._direct.recv() == [b"s", b"s"]
        assert idx._direct.call("STORY_OF", ["a"]) == (True, [b"s"])


def test_a_pipeline_that_breaks_says_so_and_leaves_the_index_usable(redis_url):
    """NOSCRIPT or a dropped connection mid-batch: recv raises PipelineBroken (the caller writes again
    through redis-py), the rest of the batch is abandoned, and later calls work."""
    with RedisIndex(SETTINGS, url=redis_url, namespace="wire5") as idx:
        idx.story_of(["a"])
        redis.Redis.from_url(redis_url).script_flush()
        assert idx._direct.send([("STORY_OF", ["a"]), ("STORY_OF", ["b"])])
        with pytest.raises(ScriptsMissing, match="NOSCRIPT"):
            idx._direct.recv()
        assert idx.story_of(["a"]) == {}  # through redis-py, which loads the script again
        assert idx._direct.send([("STORY_OF", ["a"])])
        idx._direct._conn._sock.close()
        with pytest.raises(PipelineBroken) as broken:
            idx._direct.recv()
        assert not isinstance(broken.value, ScriptsMissing)  # a lost connection is not a missing script
        assert idx._direct.call("STORY_OF", ["a"]) == (True, [b""])  # a new connection


def test_a_reply_that_does_not_come_within_the_socket_timeout_breaks_the_pipeline(redis_url):
    """Waiting is a blocking read under the client's socket timeout: a stalled server gives PipelineBroken,
    not a hang, and the next call reconnects."""
    admin = redis.Redis.from_url(redis_url)
    with RedisIndex(SETTINGS, url=redis_url, namespace="wire10", socket_timeout=0.3) as idx:
        idx._load_scripts()
        assert idx._direct.call("STORY_OF", ["a"]) == (True, [b""])
        admin.client_pause(1500)
        t0 = time.monotonic()
        assert idx._direct.send([("STORY_OF", ["a"])])
        with pytest.raises(PipelineBroken, match="[Tt]imeout"):
            idx._direct.recv()
        assert time.monotonic() - t0 < 1.2
        admin.client_unpause()
        assert idx._direct.call("STORY_OF", ["a"]) == (True, [b""])
    admin.close()


def test_push_writes_behind_calls_in_flight_and_replies_stay_in_order(redis_url):
    """push() adds calls behind those not read yet (a bulk load writes the next read while the server still
    runs the last write); with nothing in flight it is send(); replies come back in the order written."""
    with RedisIndex(SETTINGS, url=redis_url, namespace="wire6") as idx:
        idx.put(entry("a", 1))
        idx.set_story("s", ["a"])
        idx._load_scripts()
        direct = idx._direct
        assert direct.push([("STORY_OF", ["missing"])])  # nothing in flight: a send
        assert direct.push([("STORY_OF", ["a"]), ("STORY_OF", ["missing"])])
        assert direct._pending == 3
        assert direct.recv() == [b""]
        assert direct.push([("RECORDS", ["a"])])
        story, missing, ((handle, record),) = [direct.recv() for _ in range(3)]
        assert (story, missing) == ([b"s"], [b""]) and record.startswith(bytes([int(CODEC_VERSION)]))  # codec version byte
        assert idx._handles(["a"]) == {"a": int(handle).to_bytes(4, "little")}
        assert direct._pending == 0
        assert direct.call("STORY_OF", ["a"]) == (True, [b"s"])


def test_many_calls_in_flight_lose_no_reply(redis_url):
    """Hundreds of calls written in a few pushes, read back one by one: every reply, each to its call."""
    with RedisIndex(SETTINGS, url=redis_url, namespace="wire11") as idx:
        for n in range(20):
            idx.put(entry(f"a{n}", n))
            idx.set_story(f"s{n}", [f"a{n}"])
        idx._load_scripts()
        direct = idx._direct
        asked = [[f"a{(7 * k + j) % 23}" for j in range(k % 5)] for k in range(600)]
        for start in range(0, 600, 150):
            assert direct.push([("STORY_OF", ids) for ids in asked[start:start + 150]])
        got = [direct.recv() for _ in asked]
        assert got == [[f"s{i[1:]}".encode() if int(i[1:]) < 20 else b"" for i in ids] for ids in asked]
        assert direct._pending == 0 and not direct.ready()


def test_a_posted_call_is_answered_in_front_of_the_next_call_and_dropped(redis_url):
    """post() sends upkeep nobody waits for (MAINTAIN: the splits a streamed article's FIND left).  The
    next call is written behind it and gets its own answer, the posted one (an error too) being read and
    dropped on the way; settle() reads it when no call follows; another thread meanwhile goes through
    redis-py."""
    with RedisIndex(SETTINGS, url=redis_url, namespace="wire8") as idx:
        idx.put(entry("a", 1))
        idx.set_story("s", ["a"])
        idx._load_scripts()
        direct = idx._direct
        assert direct.post("STORY_OF", ["missing"])
        assert direct._pending == 1
        others: list = []
        worker = threading.Thread(target=lambda: others.append(direct.call("STORY_OF", ["a"])))
        worker.start()
        worker.join()
        assert others == [(False, None)]
        assert direct.call("STORY_OF", ["a"]) == (True, [b"s"])  # its own answer, not the posted one's
        assert direct._pending == 0
        unknown_script(direct)
        assert direct.post("BOOM", [])  # answered NOSCRIPT
        assert direct.call("STORY_OF", ["a"]) == (True, [b"s"])
        assert direct.posted_noscript  # the caller loads the scripts before its next post
        assert direct.post("STORY_OF", ["a"])
        direct.settle()
        assert direct._pending == 0 and direct.send([("STORY_OF", ["a"])]) and direct.recv() == [b"s"]


def test_ready_says_whether_a_reply_can_be_read_without_waiting(redis_url):
    """A bulk load encodes the next chunk's records while ready() is False, so ready() must not claim a
    reply before one is there, and must see it once it is."""
    admin = redis.Redis.from_url(redis_url)
    with RedisIndex(SETTINGS, url=redis_url, namespace="wire12") as idx:
        idx._load_scripts()
        direct = idx._direct
        assert direct.call("STORY_OF", ["a"]) == (True, [b""])
        admin.client_pause(300)  # the reply cannot be there before the pause ends
        assert direct.send([("STORY_OF", ["a"])])
        assert not direct.ready()
        deadline = time.monotonic() + 5
        while not direct.ready():
            assert time.monotonic() < deadline
        assert direct.ready()  # still: nothing was read
        assert direct.recv() == [b""]
        assert not direct.ready()  # everything read, nothing in flight
        assert direct.send([("STORY_OF", ["a"])])
        direct._conn._sock.close()
        assert direct.ready()  # a closed connection: recv says so at once
        with pytest.raises(PipelineBroken):
            direct.recv()
    admin.close()
