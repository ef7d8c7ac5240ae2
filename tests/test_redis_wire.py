"""The direct script path of the Redis index: reply parsing and falling back to redis-py."""

from __future__ import annotations

import threading

import pytest
import redis

from dedup.index.redis import RedisIndex
from dedup.index.redis_wire import _Error, _Incomplete, _parse
from dedup.settings import Settings
from dedup.stories import assign

from .conftest import direct_calls
from .test_index_redis import entry

SETTINGS = Settings()


def test_parser_reads_the_reply_types_the_scripts_return():
    assert _parse(b":12\r\n", 0) == (12, 5)
    assert _parse(b"$3\r\na\r\n\r\n", 0) == (b"a\r\n", 9)
    assert _parse(b"$-1\r\n", 0) == (None, 5)
    assert _parse(b"_\r\n", 0) == (None, 3)
    assert _parse(b"*3\r\n:1\r\n$2\r\nok\r\n*1\r\n$0\r\n\r\n", 0)[0] == [1, b"ok", [b""]]
    reply, _ = _parse(b"-ERR boom\r\n", 0)
    assert isinstance(reply, _Error) and reply == "ERR boom"
    for partial in (b"*2\r\n:1\r\n", b"$5\r\nab", b":1"):
        with pytest.raises(_Incomplete):
            _parse(partial, 0)


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
        assert assign(idx, entry("a", 1), SETTINGS).action == "new"
        conn = idx._direct._conn
        assert conn is not None
        client = redis.Redis.from_url(redis_url)
        me = [c for c in client.client_list() if int(c["id"]) == conn.client_id] if hasattr(conn, "client_id") else []
        if me:
            client.client_kill_filter(_id=me[0]["id"])
        else:
            conn._sock.close()  # the same from this side
        assert assign(idx, entry("b", 1), SETTINGS).action == "joined"
        assert assign(idx, entry("c", 5000), SETTINGS).action == "new"
        assert idx.story_of(["a", "b", "c"]) == {"a": "a", "b": "a", "c": "c"}
        assert len(idx) == 3


def test_error_replies_raise_what_redis_py_raises(redis_url):
    with RedisIndex(SETTINGS, url=redis_url, namespace="wire3") as idx:
        idx._direct._heads["BOOM"] = idx._direct._heads["FIND"].replace(idx._scripts["FIND"].sha.encode(),
                                                                      b"0" * 40)
        done, _ = idx._direct.call("BOOM", [])
        assert not done  # NOSCRIPT: left to redis-py
        redis.Redis.from_url(redis_url).set("{wire3}:lh", "not a hash")  # every script reads the shard state
        with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
            idx.entries(["a"])  # the first call loads the script (through redis-py)
        with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
            idx._direct.call("RECORDS", ["a"])


def test_pipelined_calls_come_back_in_order_and_free_the_connection(redis_url):
    """send() writes several calls at once; recv() reads their replies one by one (bulk ingest decides a
    chunk between the two); after the last one the connection serves ordinary calls again."""
    with RedisIndex(SETTINGS, url=redis_url, namespace="wire4") as idx:
        idx.put(entry("a", 1))
        idx.story_of(["a"])  # loads the script
        assert idx._direct.send([("STORY_OF", ["a"]), ("STORY_OF", ["missing"])])
        assert not idx._direct.send([("STORY_OF", ["a"])])  # one batch in flight at a time
        assert idx._direct.recv() == [b""]
        assert idx._direct.recv() == [b""]
        assert idx._direct.call("STORY_OF", ["a"]) == (True, [b""])


def test_a_pipeline_that_breaks_says_so_and_leaves_the_index_usable(redis_url):
    """NOSCRIPT or a dropped connection mid-batch: recv raises PipelineBroken (the caller writes again
    through redis-py), the rest of the batch is abandoned, and later calls work."""
    from dedup.index.redis_wire import PipelineBroken, ScriptsMissing

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
        assert (story, missing) == ([b"s"], [b""]) and record.startswith(bytes([4]))  # codec version byte
        assert idx._handles(["a"]) == {"a": int(handle).to_bytes(4, "little")}
        assert direct._pending == 0
        assert direct.call("STORY_OF", ["a"]) == (True, [b"s"])


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
        direct._heads["BOOM"] = direct._heads["FIND"].replace(idx._scripts["FIND"].sha.encode(), b"0" * 40)
        assert direct.post("BOOM", [])  # answered NOSCRIPT
        assert direct.call("STORY_OF", ["a"]) == (True, [b"s"])
        assert direct.post("STORY_OF", ["a"])
        direct.settle()
        assert direct._pending == 0 and direct.send([("STORY_OF", ["a"])]) and direct.recv() == [b"s"]


def test_waiting_for_a_reply_polls_the_socket_then_leaves_it_to_recv():
    """_poll_read: what arrives within the budget is read at once, nothing within it gives None (the caller
    then sleeps in recv()), and a closed peer gives None so recv() reports the close; sockets it cannot
    read directly (blocking, TLS) are not touched."""
    import socket
    import threading
    import time

    from dedup.index.redis_wire import _poll_read

    mine, peer = socket.socketpair()
    try:
        mine.settimeout(5.0)  # what redis-py does: a non-blocking descriptor under a timeout
        t0 = time.perf_counter()
        assert _poll_read(mine, 0.002) is None
        assert time.perf_counter() - t0 < 1.0
        later = threading.Timer(0.005, peer.sendall, [b"+OK\r\n"])
        later.start()
        assert _poll_read(mine, 2.0) == b"+OK\r\n"
        later.join()

        class Wrapped(socket.socket):  # stands for ssl.SSLSocket: bytes on the descriptor are not the reply
            pass

        wrapped = Wrapped(fileno=socket.dup(mine.fileno()))
        wrapped.settimeout(5.0)
        peer.sendall(b"x")
        assert _poll_read(wrapped, 0.01) is None
        wrapped.close()
        mine.settimeout(None)  # blocking: polling would block instead
        assert _poll_read(mine, 0.01) is None
        assert mine.recv(10) == b"x"
        mine.settimeout(5.0)
        peer.close()
        assert _poll_read(mine, 0.5) is None
        assert mine.recv(10) == b""
    finally:
        mine.close()
        peer.close()


def test_a_client_on_one_cpu_never_polls(redis_url, monkeypatch):
    from dedup.index import redis_wire

    with RedisIndex(Settings(redis_spin_us=500), url=redis_url, namespace="wire7") as idx:
        assert idx._direct._spin == (0.0005 if redis_wire._cpus() > 1 else 0.0)
    monkeypatch.setattr(redis_wire, "_cpus", lambda: 1)
    with RedisIndex(Settings(redis_spin_us=500), url=redis_url, namespace="wire7") as idx:
        assert idx._direct._spin == 0.0
        assert assign(idx, entry("a", 1), SETTINGS).action == "new"  # and calls still work, sleeping
    with RedisIndex(Settings(redis_spin_us=0), url=redis_url, namespace="wire7") as idx:
        assert idx._direct._spin == 0.0
        assert assign(idx, entry("b", 1), SETTINGS).action == "joined"


def test_ready_says_whether_a_reply_can_be_read_without_waiting(redis_url):
    """A bulk load encodes the next chunk's records while ready() is False, so ready() must not claim a
    reply before one is there, and must see it once it is."""
    import time

    with RedisIndex(SETTINGS, url=redis_url, namespace="wire8") as idx:
        idx._load_scripts()
        direct = idx._direct
        assert direct.send([("STORY_OF", ["a"])])
        deadline = time.monotonic() + 5
        while not direct.ready():
            assert time.monotonic() < deadline
        assert direct.ready()  # still: nothing was read
        assert direct.recv() == [b""]
        assert direct.send([("STORY_OF", ["a"])])
        assert direct.recv() == [b""]
        assert not direct.ready()  # everything read, nothing in flight
