"""Redis-specific behaviour: key layout, identical clustering, concurrency, errors, persistence."""

from __future__ import annotations

import dataclasses
import datetime
import itertools
import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import redis

import dedup.index.redis.slot as redis_index
import dedup.index.redis.retention as redis_retention
from dedup.index import MemoryIndex, open_index
from dedup.index.redis.codec import CorruptRecord
from dedup.index.redis.slot import RedisIndex
from dedup.index.redis.codec import HEADER, HEADER_SIZE
from dedup.index.redis.keys import (KINDS, PERIOD_DAYS, bucket_family, day_tag, key, period_entry, read_families,
                                    shard_index)
from dedup.index.redis.scripts import INFO_SPAN, LOAD, PERIOD_SHARDS0
from dedup.index.redis.retention import RAISE_FLOOR, dated_before
from dedup.readers import read_paths
from dedup.records import Article, Assignment, BadInput, Entry, IndexMismatch, IndexUnavailable, Signature
from dedup.service import Deduper
from dedup.settings import Settings
from dedup.signature import band_hashes, quantized_weights
from dedup import clustering
from dedup.stories import assign

from .conftest import ROOT, RedisServer, data_file, direct_calls, free_port, make_test_ca

SETTINGS = Settings()


def entry(aid: str, fill: int, day: int | None = None, terms: tuple[int, int] = (1, 2)) -> Entry:
    mh = np.arange(SETTINGS.num_perm, dtype=np.uint32) + np.uint32(fill)
    sig = Signature(minhash=mh, term_ids=np.array(terms, dtype=np.uint32),
                    term_weights=quantized_weights([191, 255]),
                    shingles=np.array([3], dtype=np.uint32), day=day)
    return Entry(aid, "title", "text " + aid, "src", "", "", sig, [11, 12, 11])


def partition(story_of: dict[str, str]) -> set[frozenset[str]]:
    """Stories as sets of article ids: compares groupings, not story labels."""
    groups: dict[str, set[str]] = {}
    for aid, sid in story_of.items():
        groups.setdefault(sid, set()).add(aid)
    return {frozenset(g) for g in groups.values()}


def articles(seed_paths: list[str], meter_n: int = 300) -> list[Article]:
    items = list(read_paths(seed_paths))
    items += itertools.islice(read_paths([str(data_file("meter-dev.jsonl"))]), meter_n)
    assert all(isinstance(a, Article) for a in items)
    return items


def cluster(dd: Deduper, items: list[Article]) -> set[frozenset[str]]:
    for a in items:
        dd.add(a)
    return partition(dd.index.story_of([a.id for a in items]))


def handle(idx: RedisIndex, article_id: str) -> int:
    """The handle an article is stored under."""
    return int.from_bytes(idx._handles([article_id])[article_id], "little")


def all_keys(url: str, ns: str) -> list[str]:
    client = redis.Redis.from_url(url)
    try:
        # SCAN may return a key more than once (while Redis resizes its key table, e.g. after mass deletes)
        return sorted({k.decode() for k in client.scan_iter(match=f"{{{ns}}}:*")})
    finally:
        client.close()


# -- key layout -------------------------------------------------------------------
def bucket_fields(e: Entry) -> list[bytes]:
    """Python twin of the scripts' bucket fields: u16 band + the band's raw value."""
    return [b.to_bytes(2, "little") + v for b, v in enumerate(band_hashes(e.signature.minhash, 32, 1))]


def test_lua_and_python_agree_on_bucket_keys_and_fields(redis_url):
    with RedisIndex(SETTINGS, url=redis_url, namespace="k") as idx:
        e = entry("a", 7)
        idx.put(e)
        idx.put(entry("b", 7))
        handles = {i: handle(idx, i) for i in "ab"}
        packed = {i: h.to_bytes(4, "little") for i, h in handles.items()}
        assert idx._r.get(key("k", "a", handles["a"]))[HEADER_SIZE:HEADER_SIZE + 128] == \
            e.signature.minhash.astype("<u4").tobytes()
        assert idx._fields(e.signature) == b"".join(bucket_fields(e))  # what FIND and INGEST are sent
        for f in bucket_fields(e):
            k = key("k", "b", "u", shard_index(int.from_bytes(f[-4:], "little"), 0, 0, PERIOD_SHARDS0))
            undated = b"\xff"  # entry = handle + the day's place in its period (undated articles: family b:u)
            assert idx._r.hgetall(k)[f] in (packed["a"] + undated + packed["b"] + undated,
                                            packed["b"] + undated + packed["a"] + undated)
        idx.delete("a")
        f = bucket_fields(e)[3]
        assert idx._r.hget(key("k", "b", "u", shard_index(int.from_bytes(f[-4:], "little"), 0, 0, PERIOD_SHARDS0)), f) == \
            packed["b"] + b"\xff"


def test_buckets_are_partitioned_by_publication_period_and_found_across_its_edges(redis_url):
    """Each period's buckets are a family of their own; a lookup still finds every candidate within the
    window, in the neighbouring period when the article is near an edge and among the undated."""
    p = 20_000 // PERIOD_DAYS  # a period in 2024
    first, last = p * PERIOD_DAYS, p * PERIOD_DAYS + PERIOD_DAYS - 1
    with RedisIndex(SETTINGS, url=redis_url, namespace="per") as idx:
        assert assign(idx, entry("edge", 1, day=last), SETTINGS).action == "new"
        shards = {k.rsplit(":", 1)[0] for k in all_keys(redis_url, "per") if k.startswith("{per}:b:")}
        assert shards == {f"{{per}}:b:{p}"}
        # the next day is the next period: written there, found here
        r = assign(idx, entry("next", 1, day=last + 1), SETTINGS)
        assert r.action == "joined" and r.story == "edge"
        assert idx.candidates(entry("q", 1, day=last - 1).signature) == {"edge"}  # "next" is two days away
        assert idx.candidates(entry("q", 1, day=last - 2).signature) == set()
        # and FIND itself leaves out what the day bytes put outside the window (verification would too)
        for day, want in ((last - 1, {"edge"}), (last - 2, set()), (last + 2, {"next"}), (last, {"edge", "next"})):
            sig = entry("q", 1, day=day).signature
            found = idx._parse_find(idx._run("FIND", idx._fields(sig), idx._day_arg(sig), 1, "q", 2))
            assert set(found.cands) == {idx._handles([a])[a] for a in want}, day
        # and the other way: the last day of the period before finds the first day of this one
        assert assign(idx, entry("start", 2, day=first), SETTINGS).action == "new"
        r = assign(idx, entry("before", 2, day=first - 1), SETTINGS)
        assert r.action == "joined" and r.story == "start"
        shards = {k.rsplit(":", 1)[0] for k in all_keys(redis_url, "per") if k.startswith("{per}:b:")}
        assert shards == {f"{{per}}:b:{p - 1}", f"{{per}}:b:{p}", f"{{per}}:b:{p + 1}"}
        # an undated article is a candidate of every article, and every article is its candidate
        assert idx.candidates(entry("q", 1).signature) == {"edge", "next"}
        r = assign(idx, entry("undated", 1), SETTINGS)
        assert r.action == "joined" and idx.members(r.story) == ["edge", "next", "undated"]
        assert idx.candidates(entry("q", 1, day=first + 400).signature) == {"undated"}
        assert assign(idx, entry("later", 1, day=first + 400), SETTINGS).story == "edge"
        for aid in ("edge", "next", "start", "before", "undated", "later"):
            idx.delete(aid)
        assert all_keys(redis_url, "per") == []


def test_sentence_counts_are_kept_per_period_and_summed_over_them(redis_url):
    """An article counts its sentences in the family of its publication period (``e:<period>``, ``e:u``
    when undated), so ingest only touches the current period's shards; a sentence's count is the sum over
    the periods, and deleting an article takes its sentences off the period it was counted in."""
    p = 20_000 // PERIOD_DAYS
    days = {"a": p * PERIOD_DAYS, "b": p * PERIOD_DAYS + 3, "c": (p + 5) * PERIOD_DAYS, "d": None}
    h11 = (11).to_bytes(4, "little")  # entry() gives every article the sentences 11, 12 and 11 again

    def count_in(period: object) -> int:
        return int(idx._r.hget(key("sent", "e", period, shard_index(11, 0, 0, PERIOD_SHARDS0)), h11) or 0)

    def families() -> set[str]:
        return {k.rsplit(":", 1)[0] for k in all_keys(redis_url, "sent") if k.startswith("{sent}:e:")}

    with RedisIndex(SETTINGS, url=redis_url, namespace="sent") as idx:
        for i, (aid, day) in enumerate(days.items()):
            idx.put(entry(aid, i, day=day))
        assert families() == {f"{{sent}}:e:{p}", f"{{sent}}:e:{p + 5}", "{sent}:e:u"}
        assert [count_in(p), count_in(p + 5), count_in("u")] == [2, 1, 1]
        assert idx.sentence_counts([11, 12, 13]) == [4, 4, 0]
        idx.delete("b")
        assert [count_in(p), count_in(p + 5), count_in("u")] == [1, 1, 1]
        idx.delete("c")
        assert families() == {f"{{sent}}:e:{p}", "{sent}:e:u"} and idx.sentence_counts([12]) == [2]
        for aid in "ad":
            idx.delete(aid)
        assert idx.sentence_counts([11]) == [0] and all_keys(redis_url, "sent") == []


def test_handle_table_is_sharded_by_handle_range(redis_url):
    """A handle's info (day, story) lives in shard ``handle // 64``, so consecutive articles write the
    same, newest shard; retention, before it has raised a floor, reads the shards from where the epoch's
    handles started (``seq0``) to the last one given out, and finds every old article there."""
    with RedisIndex(SETTINGS, url=redis_url, namespace="rng") as idx:
        days = {f"r{n}": 20_000 + n // 50 for n in range(150)}
        for i, (aid, day) in enumerate(days.items()):
            idx.put(entry(aid, i, day=day))
        handles = {aid: handle(idx, aid) for aid in days}
        shards = {k for k in all_keys(redis_url, "rng") if k.startswith("{rng}:i:")}
        assert shards == {key("rng", "i", h // INFO_SPAN) for h in handles.values()} and len(shards) >= 3
        for aid, h in handles.items():
            info = idx._r.hget(key("rng", "i", h // INFO_SPAN), h.to_bytes(4, "little"))
            assert int.from_bytes(info[:4], "little", signed=True) == days[aid]
        seq0, seq = (int(x) for x in idx._r.hmget(key("rng", "meta"), "seq0", "seq"))
        assert sorted(handles.values()) == list(range(seq0 + 1, seq + 1))
        assert sorted(dated_before(idx._r, "rng", 20_001, idx._blobs).ids) == sorted(f"r{n}" for n in range(50))
        for aid in days:
            idx.delete(aid)
        assert all_keys(redis_url, "rng") == []


def test_retention_reads_the_handle_table_from_its_floor_and_stops_once_every_old_article_is_found(
        redis_url, monkeypatch):
    """A pass reads the handle shards upwards, in round trips that grow (1, 2, 4, ... shards here), until
    it has found as many old articles as ``{ns}:days`` counts, then raises the floor to the lowest shard
    that keeps an article: the next pass does not read the shards it emptied.  An old article ingested
    late has a new, high handle and is still found."""
    monkeypatch.setattr(redis_retention, "FIRST_BATCH", 1)
    with RedisIndex(dataclasses.replace(SETTINGS, retain_days=2), url=redis_url, namespace="floor") as idx:
        for n in range(1200):  # days 100-111, 100 articles a day, in order
            idx.put(entry(f"d{n}", n, day=100 + n // 100))
        shard = {f"d{n}": handle(idx, f"d{n}") // INFO_SPAN for n in range(1200)}
        first = (int(idx._r.hget(key("floor", "meta"), "seq0")) + 1) // INFO_SPAN  # the first handle's shard
        table = shard["d1199"] - first + 1  # shards in the whole table
        assert shard["d0"] == first and table >= 18

        found = dated_before(idx._r, "floor", 103, idx._blobs, expect=300)  # a pass whose cutoff is day 103
        assert sorted(found.ids) == sorted(f"d{n}" for n in range(300))
        assert found.floor == shard["d300"]  # the lowest shard that keeps an article
        needed = shard["d299"] - first + 1
        assert needed <= found.shards_read < min(2 * needed, table)  # stopped in the round trip that found all
        assert dated_before(idx._r, "floor", 103, idx._blobs).shards_read == table  # unbounded: the whole table

        assert sorted(idx.expire()) == sorted(f"d{n}" for n in range(900))  # newest day 111: cutoff 109
        assert int(idx._r.hget(key("floor", "meta"), "ifloor")) == shard["d900"]
        again = dated_before(idx._r, "floor", 110, idx._blobs)  # read to the end, from the floor
        assert again.shards_read == table - (shard["d900"] - first)
        assert sorted(again.ids) == sorted(f"d{n}" for n in range(900, 1000))

        idx.put(entry("late", 1900, day=90))  # published long ago, ingested now: above the floor
        idx.put(entry("next", 1901, day=120))  # cutoff 118: everything but itself goes
        assert sorted(idx.expire()) == sorted([f"d{n}" for n in range(900, 1200)] + ["late"])
        assert idx._r.hget(key("floor", "meta"), "ifloor") == str(handle(idx, "next") // INFO_SPAN).encode()
        assert [aid for aid in ("late", "next", "d599") if aid in idx] == ["next"]


def test_a_handle_whose_record_is_missing_keeps_the_retention_floor_at_or_below_its_shard(redis_url):
    """Such a handle is not deleted by the pass (it has no id to delete), so its shard must be read again."""
    with RedisIndex(dataclasses.replace(SETTINGS, retain_days=2), url=redis_url, namespace="gap") as idx:
        for n in range(200):
            idx.put(entry(f"g{n}", n, day=100 + n // 100))
        h = handle(idx, "g5")
        idx._r.delete(key("gap", "a", h))  # as if a record were lost
        found = dated_before(idx._r, "gap", 101, idx._blobs, expect=100)
        assert sorted(found.ids) == sorted(f"g{n}" for n in range(100) if n != 5)
        assert found.floor is None or found.floor <= h // INFO_SPAN


def test_the_retention_floor_only_rises_and_belongs_to_its_epoch(redis_url):
    """Two workers expiring at once each write a valid floor, so the lower one must not win; a client that
    missed a new epoch writes none, and an emptied namespace gets no meta hash back."""
    with RedisIndex(SETTINGS, url=redis_url, namespace="fl") as idx:
        idx.put(entry("a", 1, day=5))
        meta = key("fl", "meta")
        assert idx._r.eval(RAISE_FLOOR, 1, meta, "stale-epoch", 7) == 0
        assert idx._r.eval(RAISE_FLOOR, 1, meta, idx._epoch, 7) == 1
        assert idx._r.eval(RAISE_FLOOR, 1, meta, idx._epoch, 3) == 0
        assert idx._r.hget(meta, "ifloor") == b"7"
        idx.delete("a")
        assert all_keys(redis_url, "fl") == []  # the floor went with meta
        assert idx._r.eval(RAISE_FLOOR, 1, meta, idx._epoch, 9) == 0
        assert all_keys(redis_url, "fl") == []


def test_python_and_lua_agree_on_bucket_families(redis_url):
    """The bulk path works out which periods a lookup reads as the scripts do (keys.read_families)."""
    from dedup.index.redis.keys import UNDATED_TAG
    from dedup.index.redis.scripts import SLOT

    tags = [0, 1, 15, 16, 17, 1249, 1250, 20_000, 65519, 65520, 65533, 65534, UNDATED_TAG]
    windows = [0, 1, 2, 15, 16, 40, 32767]
    script = SLOT.HELPERS + """
local out = {}
for i = 4, #ARGV, 2 do
  local fams = window_fams(tonumber(ARGV[i]), tonumber(ARGV[i + 1]))
  out[#out + 1] = bfam(tonumber(ARGV[i])) .. ' ' .. (fams and table.concat(fams, ' ') or '*')
end
return out
"""
    cases = [(t, w) for t in tags for w in windows]
    client = redis.Redis.from_url(redis_url)
    got = client.eval(script, 1, "{x}:meta", "x", 32, 1, *[x for c in cases for x in c])
    client.close()
    for (t, w), line in zip(cases, got):
        own, *fams = line.decode().split(" ")
        assert own == bucket_family(t) and fams[:1] in ([own], ["*"])
        want = read_families(t, w)
        assert (fams == ["*"] and want is None) or (set(fams) == want and len(fams) == len(want)), (t, w, line)
    assert read_families(20_000, 1) == {"b:1249", "b:1250", "b:u"}  # 20,000 is the first day of period 1250


def random_entry(n: int, rng: np.random.Generator) -> Entry:
    """An undated article with a random minhash: its buckets go to one family, and it links to nothing."""
    mh = rng.integers(0, 2**32, SETTINGS.num_perm, dtype=np.uint64).astype(np.uint32)
    sig = Signature(minhash=mh, term_ids=np.array([1], dtype=np.uint32), term_weights=quantized_weights([255]),
                    shingles=np.array([], dtype=np.uint32), day=None)
    return Entry(f"r{n}", "", "", "", "", "", sig, [n])


def test_bucket_shards_split_and_stay_small_listpacks(redis_url):
    """Linear hashing keeps every shard a listpack as the index grows, and shrinks back to nothing."""
    rng = np.random.default_rng(3)
    with RedisIndex(SETTINGS, url=redis_url, namespace="grow") as idx:
        for n in range(400):  # 400 x 32 = 12,800 bucket fields: more than 8 shards x 128 (one family: undated)
            idx.put(random_entry(n, rng))
        level = int(idx._r.hget(key("grow", "lh"), "b:ul"))
        assert level >= 1
        shards = [k for k in all_keys(redis_url, "grow") if k.startswith("{grow}:b:u:")]
        assert len(shards) > PERIOD_SHARDS0 * 2 ** level - 1
        sizes = [idx._r.hlen(k) for k in shards]
        assert sum(sizes) == 400 * 32 and max(sizes) <= 128
        assert {idx._r.object("encoding", k) for k in shards} == {b"listpack"}
        # every article is still found through its (possibly moved) buckets
        assert all(idx.candidates(s) >= {a} for a, s in idx.signatures([f"r{n}" for n in range(0, 400, 37)]).items())
        # mass deletion merges shards back (under a quarter of the load), and nothing is lost on the way
        kept = [f"r{n}" for n in range(0, 400, 20)]
        sigs = idx.signatures(kept)
        for n in range(400):
            if f"r{n}" not in kept:
                idx.delete(f"r{n}")
        level, split, n = [int(v or 0) for v in idx._r.hmget(key("grow", "lh"), "b:ul", "b:up", "b:un")]
        # merged back until one more merge would put it over a quarter of the load: 640 fields, 64 shards
        assert n == 20 * 32 and (PERIOD_SHARDS0 * 2 ** level + split) * LOAD == 4 * n and level < 5
        shards = [k for k in all_keys(redis_url, "grow") if k.startswith("{grow}:b:")]
        assert len(shards) <= 64 and sum(idx._r.hlen(k) for k in shards) == 20 * 32
        assert all(idx.candidates(s) >= {a} for a, s in sigs.items())
        for aid in kept:
            idx.delete(aid)
        assert all_keys(redis_url, "grow") == []


def bucket_load(idx: RedisIndex, ns: str) -> tuple[int, int]:
    """Fields and shards of the undated bucket family."""
    level, split, n = [int(v or 0) for v in idx._r.hmget(key(ns, "lh"), "b:ul", "b:up", "b:un")]
    return n, PERIOD_SHARDS0 * 2 ** level + split


def test_streamed_articles_leave_their_splits_to_the_server_and_shards_stay_small(redis_url):
    """A streamed article's FIND writes without splitting shards (up to 1.25 x the load) and answers the
    families it left over the load; the client sends MAINTAIN for them without waiting, and the server
    splits while the client prepares its next article.  After each article the family is at most one
    split over the load, every shard a listpack, and every article is found."""
    rng = np.random.default_rng(5)
    with RedisIndex(SETTINGS, url=redis_url, namespace="defer") as idx:
        for n in range(400):
            assert assign(idx, random_entry(n, rng), SETTINGS).action == "new"
            idx.flush()  # waits for the MAINTAIN the article sent, if any
            fields, shards = bucket_load(idx, "defer")
            assert fields <= LOAD * (shards + 1), n
        assert fields == 400 * 32 and shards > 8 * PERIOD_SHARDS0
        keys = [k for k in all_keys(redis_url, "defer") if k.startswith("{defer}:b:u:")]
        assert len(keys) == shards and max(idx._r.hlen(k) for k in keys) <= 128
        assert {idx._r.object("encoding", k) for k in keys} == {b"listpack"}
        assert all(idx.candidates(s) >= {a} for a, s in idx.signatures([f"r{n}" for n in range(0, 400, 37)]).items())


def test_upkeep_goes_on_after_the_server_lost_its_scripts(redis_url):
    """A restarted server has no scripts: the MAINTAIN posted next is answered NOSCRIPT, which nobody
    waits for, so the client notes it and loads the scripts before the next one."""
    rng = np.random.default_rng(7)
    with RedisIndex(SETTINGS, url=redis_url, namespace="upkeep") as idx:
        for n in range(100):
            assign(idx, random_entry(n, rng), SETTINGS)
        redis.Redis.from_url(redis_url).script_flush()
        for n in range(100, 250):
            assign(idx, random_entry(n, rng), SETTINGS)
        idx.flush()
        fields, shards = bucket_load(idx, "upkeep")
        assert fields == 250 * 32 and fields <= LOAD * (shards + 1)


def test_splits_a_stopped_client_left_undone_are_owed_again_by_the_next_write(redis_url):
    """A client that stops before sending MAINTAIN leaves its families over the load: still consistent
    (every field is where the family's state says), FIND's own limit keeps shards small, and the next
    write to the family owes the splits again."""
    rng = np.random.default_rng(6)
    with RedisIndex(SETTINGS, url=redis_url, namespace="owed") as idx:
        post = idx._direct.post
        idx._direct.post = lambda name, args: True  # "sent": never, as by a client stopped right after FIND
        for n in range(300):
            assign(idx, random_entry(n, rng), SETTINGS)
        fields, shards = bucket_load(idx, "owed")
        assert LOAD * (shards + 1) < fields <= (LOAD + LOAD // 4) * shards
        keys = [k for k in all_keys(redis_url, "owed") if k.startswith("{owed}:b:u:")]
        assert {idx._r.object("encoding", k) for k in keys} == {b"listpack"}
        assert all(idx.candidates(s) >= {a} for a, s in idx.signatures([f"r{n}" for n in range(0, 300, 29)]).items())
        idx._direct.post = post
        assign(idx, random_entry(300, rng), SETTINGS)
        idx.flush()
        fields, shards = bucket_load(idx, "owed")
        assert fields == 301 * 32 and fields <= LOAD * (shards + 1)


def test_popular_bucket_is_stored_in_pieces_and_keeps_its_shard_a_listpack(redis_url):
    """A bucket holding many articles is split into <= 60-byte pieces (values over 64 bytes would turn the
    shard into a hash table); reads, deletes from the middle and the end give the same candidates."""
    rng = np.random.default_rng(5)
    shared = rng.integers(0, 2**32, SETTINGS.num_perm, dtype=np.uint64).astype(np.uint32)
    with RedisIndex(SETTINGS, url=redis_url, namespace="hot") as idx:
        ids = [f"h{n}" for n in range(35)]  # 35 x 5 bytes = 3 pieces per bucket
        for aid in ids:
            mh = rng.integers(0, 2**32, SETTINGS.num_perm, dtype=np.uint64).astype(np.uint32)
            mh[:3] = shared[:3]  # bands 0-2 shared by all
            sig = Signature(minhash=mh, term_ids=np.array([1], dtype=np.uint32),
                            term_weights=quantized_weights([255]), shingles=np.array([], dtype=np.uint32),
                            day=20000)
            idx.put(Entry(aid, "", "", "", "", "", sig, [1]))
        probe = Signature(minhash=shared, term_ids=np.array([1], dtype=np.uint32),
                          term_weights=quantized_weights([255]), shingles=np.array([], dtype=np.uint32),
                          day=20001)
        assert idx.candidates(probe) == set(ids)
        shards = [k for k in all_keys(redis_url, "hot") if k.startswith("{hot}:b:")]
        values = [v for k in shards for v in idx._r.hvals(k)]
        assert max(map(len, values)) <= 60 and sum(map(len, values)) == 35 * 32 * 5
        assert {idx._r.object("encoding", k) for k in shards} == {b"listpack"}
        for aid in ["h3", "h17", "h34", "h0"]:
            idx.delete(aid)
            ids.remove(aid)
            assert idx.candidates(probe) == set(ids)
        for aid in ids:
            idx.delete(aid)
        assert all_keys(redis_url, "hot") == []


def test_ids_with_nul_are_refused(redis_url):
    with RedisIndex(SETTINGS, url=redis_url, namespace="k") as idx:
        with pytest.raises(BadInput, match="NUL"):
            idx.put(entry("a\0b", 1))


def test_every_key_belongs_to_a_documented_kind(redis_url):
    with RedisIndex(SETTINGS, url=redis_url, namespace="k") as idx:
        idx.put(entry("a:1", 7))
        idx.put(entry("b", 7))
        idx.set_story("a:1", ["a:1", "b"])
        kinds = {k.split(":")[1] for k in all_keys(redis_url, "k")}
        assert kinds <= KINDS and {"meta", "a", "h", "b", "e", "lh", "s", "i", "stories", "n"} <= kinds
        assert key("k", "a", handle(idx, "a:1")) in all_keys(redis_url, "k")
    with pytest.raises(ValueError):
        key("k", "nope")


def test_namespaces_do_not_see_each_other(redis_url):
    with RedisIndex(SETTINGS, url=redis_url, namespace="one") as a, \
            RedisIndex(SETTINGS, url=redis_url, namespace="two") as b:
        a.put(entry("x", 1))
        assert "x" in a and "x" not in b and len(b) == 0
    with pytest.raises(ValueError, match="namespace"):
        RedisIndex(SETTINGS, url=redis_url, namespace="one:b")


# -- same clustering as in process ------------------------------------------------------
def test_seeds_and_meter_slice_cluster_identically_in_memory_and_redis(redis_url, seed_paths):
    items = articles(seed_paths)
    mem = cluster(Deduper(SETTINGS), items)
    with Deduper(SETTINGS, url=redis_url, namespace="same") as dd:
        red = cluster(dd, items)
    assert red == mem
    assert any(len(g) > 1 for g in mem)  # the slice really has multi-article stories


def test_cli_cluster_with_redis_matches_in_process(redis_url, seed_paths):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}

    def run(*extra: str) -> set[frozenset[str]]:
        out = subprocess.run([sys.executable, "-m", "dedup", "cluster", "--format", "jsonl", *extra,
                              str(ROOT / "seeds")], capture_output=True, text=True, env=env, check=True)
        return partition({r["id"]: r["cluster"] for r in map(json.loads, out.stdout.splitlines())})

    assert run("--redis", redis_url) == run()


# -- TLS and passwords: rediss:// against a real TLS redis-server ------------------------
@pytest.fixture(scope="module")
def tls_redis(tmp_path_factory):
    """A redis-server that speaks only TLS (plain port off) and wants a password, with a throwaway CA."""
    d = tmp_path_factory.mktemp("tls")
    make_test_ca(d)
    port = free_port()
    server = RedisServer(d / "data", port, "--port", "0", "--tls-port", str(port),
                         "--tls-cert-file", str(d / "server.crt"), "--tls-key-file", str(d / "server.key"),
                         "--tls-ca-cert-file", str(d / "ca.crt"), "--tls-auth-clients", "no",
                         "--requirepass", "s3cret").start()
    yield port, d / "ca.crt"
    server.stop()


def test_rediss_url_with_password_clusters_like_in_process(tls_redis, seed_paths):
    port, ca = tls_redis
    url = f"rediss://:s3cret@127.0.0.1:{port}/0?ssl_ca_certs={ca}"
    items = articles(seed_paths)
    with Deduper(SETTINGS, url=url, namespace="tls") as dd:
        assert cluster(dd, items) == cluster(Deduper(SETTINGS), items)
        first = items[0].id  # seed 000, which adds the most to its story
        story = dd.story(dd.story_of(first))
        assert story is not None and story.articles[0].id == first  # ranking reads records over TLS too


def test_tls_mistakes_are_named_with_the_password_masked(tls_redis):
    port, ca = tls_redis
    import time

    cases = [  # (URL, what the message suggests, retried: a reset connection may be a restarting server)
        (f"redis://:s3cret@127.0.0.1:{port}/0", "rediss://", True),  # plain text to a TLS-only port
        (f"rediss://:s3cret@127.0.0.1:{port}/0", "ssl_ca_certs", False),  # the server's CA is not trusted
        (f"rediss://:wrong@127.0.0.1:{port}/0?ssl_ca_certs={ca}", "password", False),  # bad password
    ]
    for url, hint, retried in cases:
        start = time.monotonic()
        with pytest.raises(IndexUnavailable) as err:
            with Deduper(SETTINGS, url=url, namespace="tls") as dd:
                dd.add(Article(id="x", text="The minister resigned over the budget cuts on Friday."))
        message = str(err.value)
        assert f"127.0.0.1:{port}" in message and hint in message
        assert "s3cret" not in message and "wrong" not in message
        assert retried or time.monotonic() - start < 2, "no retry cures a refused password or an untrusted certificate"


# -- ingest: round trips and concurrency -----------------------------------------------
def _count_round_trips(idx: RedisIndex, monkeypatch) -> list:
    """Every call ``idx`` sends from now on, by name (script calls go on the wire directly, redis-py when that
    declines); its scripts are loaded first, as on any server that ingested before, so counts stay exact."""
    for sc in idx._scripts.values():
        idx._r.script_load(sc.script)
    calls: list = []
    real = idx._r.execute_command
    monkeypatch.setattr(idx._r, "execute_command", lambda *a, **k: calls.append(a[0]) or real(*a, **k))
    return direct_calls(idx, calls)


def test_ingest_round_trips(redis_url, monkeypatch):
    """assign = one round trip for an article without candidates, and for one whose candidates this client
    knows (its copy of the buckets: decided ahead, written by FIND); two when a candidate is news to it."""
    with RedisIndex(SETTINGS, url=redis_url, namespace="rt") as idx, \
            RedisIndex(SETTINGS, url=redis_url, namespace="rt") as other:
        calls = _count_round_trips(idx, monkeypatch)
        assert assign(idx, entry("a", 1), SETTINGS).action == "new"
        assert calls == ["FIND"]
        assert assign(idx, entry("b", 1), SETTINGS).action == "joined"
        assert calls == ["FIND"] * 2, "a is in the copy: the decision went with the read"
        assert assign(idx, entry("c", 99), SETTINGS).action == "new"
        assert len(calls) == 3, calls
        # another worker adds a candidate: the copy's guess is refused, read and write as before, plus one
        # MGET of the newcomer's record; the copy learns it, so the next article is one round trip again
        assert assign(other, entry("e", 1), SETTINGS).action == "joined"
        del calls[:]
        assert assign(idx, entry("f", 1), SETTINGS).action == "joined"
        assert calls == ["FIND", "MGET", "INGEST"], calls
        del calls[:]
        assert assign(idx, entry("g", 1), SETTINGS).action == "joined"
        assert calls == ["FIND"], calls
        assert idx.story_of(["a", "b", "c", "e", "f", "g"]) == {"a": "a", "b": "a", "c": "c", "e": "a", "f": "a",
                                                              "g": "a"}
        # a stored id: FIND says so; same content is unchanged, a new version replaces it
        assert assign(idx, entry("c", 99), SETTINGS).action == "unchanged"
        changed = dataclasses.replace(entry("c", 99), text="another version")
        assert assign(idx, changed, SETTINGS).action == "replaced"
        assert idx.entries(["c"])["c"].text == "another version" and len(idx) == 6


def test_without_the_bucket_copy_an_article_with_candidates_takes_two_round_trips(redis_url, monkeypatch):
    no_copy = dataclasses.replace(SETTINGS, redis_mirror=0)
    with RedisIndex(no_copy, url=redis_url, namespace="rt0") as idx:
        calls = _count_round_trips(idx, monkeypatch)
        assign(idx, entry("a", 1), no_copy)
        assert assign(idx, entry("b", 1), no_copy).action == "joined"
        assert calls == ["FIND", "FIND", "INGEST"]
        assert len(idx._mirror) == 0


def watch_decisions(monkeypatch, on_call: Callable[[int], None] | None = None) -> list[tuple[str, dict]]:
    """Record (article id, its linked candidates' stories) of every decision the core makes from now on;
    ``on_call(n)`` runs just before the n-th one: between an index's read and its write.  Decisions made
    inside ``on_call`` (another process's ingest) are neither recorded nor counted."""
    seen: list[tuple[str, dict]] = []
    real = clustering.decide
    inside = [False]

    def spy(entry, sigs, stories, *rest):
        if inside[0]:
            return real(entry, sigs, stories, *rest)
        seen.append((entry.id, dict(stories)))
        if on_call is not None:
            inside[0] = True
            try:
                on_call(len(seen))
            finally:
                inside[0] = False
        return real(entry, sigs, stories, *rest)

    monkeypatch.setattr(clustering, "decide", spy)
    return seen


def test_article_written_concurrently_into_a_shared_bucket_is_not_missed(redis_url, monkeypatch):
    """Another worker inserts a rival between our read and our write: the write must notice and redo."""
    # without the bucket copy, which would decide once more ahead of the read (mirror.py)
    with RedisIndex(dataclasses.replace(SETTINGS, redis_mirror=0), url=redis_url, namespace="race") as idx, \
            RedisIndex(SETTINGS, url=redis_url, namespace="race") as other:
        # a candidate that is not one story with ours (other words), so that the read comes back for a
        # decision instead of storing the article at once; on the first attempt the rival lands after it
        other.ingest(entry("anchor", 5, terms=(90, 91)))
        calls = watch_decisions(monkeypatch, lambda n: n == 1 and other.ingest(entry("rival", 5)))
        result = idx.ingest(entry("me", 5))
        seen = [stories for _, stories in calls]
        assert len(seen) == 2 and seen[0] == {} and seen[1] == {"rival": "rival"}
        assert result.action == "joined" and idx.members("rival") == ["me", "rival"]


def _run_cli(url: str, ns: str, path: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-m", "dedup", "cluster", "--redis", url, "--namespace", ns,
                             "--format", "jsonl", "--skip-bad", str(path)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)


def two_parts(tmp_path: Path, split: str) -> tuple[list[str], list[Article], list[Path]]:
    """240 meter-dev articles for two processes: each the whole corpus (one reversed), or interleaved
    halves.  Returns their ids, the articles in one-process order, and the two files."""
    lines = data_file("meter-dev.jsonl").read_text(encoding="utf-8").splitlines()[:240]
    parts = [lines, lines[::-1]] if split == "same-corpus" else [lines[0::2], lines[1::2]]
    paths = []
    for n, part in enumerate(parts):
        paths.append(tmp_path / f"part{n}.jsonl")
        paths[-1].write_text("\n".join(part) + "\n", encoding="utf-8")
    items = list(read_paths([str(paths[0])])) + (list(read_paths([str(paths[1])])) if split != "same-corpus" else [])
    return [json.loads(line)["id"] for line in lines], items, paths


def finish_all(procs: list[subprocess.Popen]) -> None:
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err


@pytest.mark.parametrize("split", ["same-corpus", "interleaved-halves"])
def test_two_processes_end_with_the_one_process_partition(redis_url, tmp_path, split):
    ids, items, paths = two_parts(tmp_path, split)
    finish_all([_run_cli(redis_url, split, p) for p in paths])
    with RedisIndex(SETTINGS, url=redis_url, namespace=split) as idx:
        assert len(idx) == len(ids)
        shared = partition(idx.story_of(ids))
        assert sum(len(g) for g in shared) == len(ids)
    assert shared == cluster(Deduper(SETTINGS), items)


def _worker(url: str, ns: str, path: str, barrier) -> None:
    items = [a for a in read_paths([path]) if isinstance(a, Article)]
    with Deduper(SETTINGS, url=url, namespace=ns) as dd:
        barrier.wait(timeout=60)  # start together so the ingests really interleave
        for a in items:
            dd.add(a)


def test_three_synchronized_workers_end_with_the_one_process_partition(redis_url, tmp_path):
    import multiprocessing

    lines = data_file("meter-dev.jsonl").read_text(encoding="utf-8").splitlines()[:300]
    ctx = multiprocessing.get_context("fork")
    barrier = ctx.Barrier(3)
    paths = []
    for n in range(3):
        paths.append(str(tmp_path / f"w{n}.jsonl"))
        Path(paths[-1]).write_text("\n".join(lines[n::3]) + "\n", encoding="utf-8")
    procs = [ctx.Process(target=_worker, args=(redis_url, "sync", p, barrier)) for p in paths]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=300)
        assert p.exitcode == 0
    items = [a for p in paths for a in read_paths([p])]
    with RedisIndex(SETTINGS, url=redis_url, namespace="sync") as idx:
        shared = partition(idx.story_of([a.id for a in items]))
    assert shared == cluster(Deduper(SETTINGS), items)


def test_same_article_stored_concurrently_by_another_worker_is_reported_unchanged(redis_url, monkeypatch):
    with RedisIndex(SETTINGS, url=redis_url, namespace="dup") as idx, \
            RedisIndex(SETTINGS, url=redis_url, namespace="dup") as other:
        other.ingest(entry("anchor", 5, terms=(90, 91)))  # a candidate: the read comes back for a decision
        watch_decisions(monkeypatch, lambda n: n == 1 and other.ingest(entry("a", 5)))
        result = assign(idx, entry("a", 5), SETTINGS)
        other.delete("anchor")
        assert result.action == "unchanged" and result.story == "a"
        assert len(idx) == 1 and idx.members("a") == ["a"] and idx.sentence_counts([11]) == [1]


# -- settings fingerprint, errors, decoding ---------------------------------------------
def test_refuses_a_namespace_built_with_other_signature_settings(redis_url):
    RedisIndex(SETTINGS, url=redis_url, namespace="fp").close()
    with pytest.raises(IndexMismatch, match="namespace 'fp'.*another --namespace"):
        RedisIndex(Settings(key_terms=12), url=redis_url, namespace="fp")
    RedisIndex(Settings(min_cosine=0.5), url=redis_url, namespace="fp").close()  # verification may change


def test_unreachable_server_error_names_the_url_with_password_masked():
    url = f"redis://:hunter2@127.0.0.1:{free_port()}/0"
    with pytest.raises(IndexUnavailable) as err:
        RedisIndex(SETTINGS, url=url, namespace="x", retries=0)
    assert "redis://:***@127.0.0.1" in str(err.value) and "hunter2" not in str(err.value)


def test_password_in_url(tmp_path):
    server = RedisServer(tmp_path / "pw", None, "--requirepass", "s3cret").start()
    try:
        with open_index(SETTINGS, f"redis://:s3cret@127.0.0.1:{server.port}/0", "pw") as idx:
            idx.put(entry("a", 1))
            assert "a" in idx
        with pytest.raises(Exception) as err:
            RedisIndex(SETTINGS, url=f"redis://:wrong@127.0.0.1:{server.port}/0", namespace="pw", retries=0)
        assert "wrong" not in str(err.value)
    finally:
        server.stop()


def test_damaged_record_raises_an_error_naming_key_and_field(redis_url):
    """The message names the record's own key (for redis-cli), whichever way the record was read."""
    with RedisIndex(SETTINGS, url=redis_url, namespace="bad") as idx:
        idx.put(entry("a", 1))
        k = key("bad", "a", handle(idx, "a"))
        idx._r.set(k, idx._r.get(k)[:HEADER_SIZE + 128 + 6 + 1])  # ends inside the weight levels
        with pytest.raises(CorruptRecord, match=f"^{re.escape(k)}: field 'term weights'"):
            idx.signatures(["a"])
        idx._r.set(k, b"\x07" + idx._r.get(k)[1:])
        with pytest.raises(CorruptRecord, match=f"^{re.escape(k)}: field 'header' has format version 7"):
            idx.entries(["a"])
        with pytest.raises(CorruptRecord, match=f"^{re.escape(k)}: field 'header' has format version 7"):
            idx.delete("a")


@pytest.mark.parametrize("store_features", [False, True])
def test_another_process_reads_back_the_very_signatures_whichever_way_records_are_stored(
        redis_url, seed_paths, store_features):
    """By default a record keeps the minhash and the text, and a reader with an empty cache signs the
    text again; with --store-features it keeps the term vector, trigrams and word hashes.  Either way
    the reader verifies with bit-identical signatures, so workers agree on every pair."""
    settings = dataclasses.replace(SETTINGS, store_features=store_features)
    dd = Deduper(SETTINGS)  # in process only to sign: the Redis settings go to the indexes
    entries = [dd.prepare(a) for a in articles(seed_paths, meter_n=120)]
    ns = f"feat{int(store_features)}"
    with RedisIndex(settings, url=redis_url, namespace=ns) as writer:
        writer.ingest_many(entries)
        raw = [writer._r.get(key(ns, "a", handle(writer, e.id))) for e in entries]
    n_terms = [HEADER.unpack_from(b)[4] for b in raw]
    assert all(n > 0 for n in n_terms) if store_features else not any(n_terms)
    with RedisIndex(settings, url=redis_url, namespace=ns) as reader:  # nothing cached: reads the records
        got = reader.signatures([e.id for e in entries])
        again = reader.entries([entries[0].id])[entries[0].id]
    for e in entries:
        for part in ("minhash", "term_ids", "term_weights", "shingles", "words"):
            assert np.array_equal(getattr(got[e.id], part), getattr(e.signature, part)), (e.id, part)
        assert got[e.id].day == e.signature.day
    assert np.array_equal(again.signature.shingles, entries[0].signature.shingles)


def test_a_namespace_may_hold_both_kinds_of_record(redis_url, seed_paths):
    """--store-features can be switched on or off on a live namespace: each record says what it holds."""
    items = articles(seed_paths, meter_n=120)
    lean, full = SETTINGS, dataclasses.replace(SETTINGS, store_features=True)
    with Deduper(lean, url=redis_url, namespace="mixed") as a, Deduper(full, url=redis_url, namespace="mixed") as b:
        for n, item in enumerate(items):
            (a if n % 2 else b).add(item)
        mixed = partition(a.index.story_of([i.id for i in items]))
    assert mixed == cluster(Deduper(SETTINGS), items)


def test_records_are_compact_bytes_not_pickle(redis_url):
    with RedisIndex(SETTINGS, url=redis_url, namespace="c") as idx:
        e = entry("a", 1)
        idx.put(e)
        raw = idx._r.get(key("c", "a", handle(idx, "a")))
        assert raw[HEADER_SIZE:HEADER_SIZE + 128] == e.signature.minhash.astype("<u4").tobytes()
        assert not raw.startswith(b"\x80")  # pickle protocol marker


# -- retention ------------------------------------------------------------------------------
def retention_scenario(idx: RedisIndex) -> None:
    """With --retain-days 2 (the index's settings): articles older than the newest stored day minus
    the window leave, their stories are split again, and undated articles stay."""
    idx.ingest(entry("old", 1, day=100))
    idx.ingest(entry("mid", 1, day=101))
    idx.ingest(entry("undated", 50))
    assert idx.members("old") == ["mid", "old"]
    idx.ingest(entry("new", 1, day=103))  # cutoff 101: "old" goes, "mid" stays
    assert "old" not in idx and "mid" in idx and "undated" in idx
    stories = idx.story_of(["mid", "new"])
    assert idx.members(stories["mid"]) == ["mid"] and idx.members(stories["new"]) == ["new"]
    idx.ingest(entry("newer", 1, day=110))
    assert sorted(k for k in ("old", "mid", "undated", "new", "newer") if k in idx) == ["newer", "undated"]


def test_retention_drops_articles_older_than_the_window_and_resplits_their_stories(redis_url):
    with RedisIndex(Settings(retain_days=2), url=redis_url, namespace="ret") as idx:
        retention_scenario(idx)
        assert idx._r.hgetall(key("ret", "days")) == {b"110": b"1"}  # articles per publication day


def test_retention_off_keeps_everything(redis_url):
    with RedisIndex(SETTINGS, url=redis_url, namespace="keep") as idx:
        for n, day in enumerate((1, 500, 1000)):
            idx.ingest(entry(f"a{n}", n, day=day))
        assert len(idx) == 3 and idx.expire() == []


def test_a_retention_pass_deletes_in_batches_then_resplits_each_story_once_into_the_one_at_a_time_parts(
        redis_url, seed_paths, monkeypatch):
    """A pass deletes the old articles DELETE_CHUNK to a script call, then re-splits each story they
    leave once, not once per deleted article (a day's articles took seconds that way, holding up the
    ingest that started the pass).  The stories left are those of deleting the same articles one at a
    time and re-splitting after each (dedup.stories.remove)."""
    import datetime as dt

    import dedup.stories as stories

    monkeypatch.setattr(redis_index, "DELETE_CHUNK", 16)
    start = dt.datetime(2020, 1, 6, 12, tzinfo=dt.timezone.utc)
    items = [dataclasses.replace(a, published=start + dt.timedelta(days=n % 2))  # stories span both days
             for n, a in enumerate(articles(seed_paths, meter_n=240))]
    old = sorted(a.id for a in items if a.published == start)
    trigger = Article(id="trigger", text="The council approved the new harbour budget on Thursday evening.",
                      published=start + dt.timedelta(days=3))  # newest day + 3, retain 2: day one goes
    kept = sorted({a.id for a in items} - set(old)) + ["trigger"]

    with Deduper(SETTINGS, url=redis_url, namespace="one") as one:  # the reference, article by article
        for a in items + [trigger]:
            one.add(a)
        before = partition(one.index.story_of(kept))
        for aid in old:
            stories.remove(one.index, aid, SETTINGS)
        expected = partition(one.index.story_of(kept))
    assert expected != before  # some stories fell apart when their old articles went

    scripts: list[str] = []
    resplits: list[str] = []
    resplit = stories.resplit
    monkeypatch.setattr(stories, "resplit", lambda index, story, settings: resplits.append(story) or resplit(
        index, story, settings))
    run = RedisIndex._run
    monkeypatch.setattr(RedisIndex, "_run", lambda self, name, *args: scripts.append(name) or run(self, name, *args))
    with Deduper(Settings(retain_days=2), url=redis_url, namespace="batch") as dd:
        for a in items:
            dd.add(a)
        scripts.clear()
        resplits.clear()
        dd.add(trigger)
        assert [aid for aid in old if aid in dd.index] == [] and all(aid in dd.index for aid in kept)
        assert partition(dd.index.story_of(kept)) == expected
        assert "DELETE" not in scripts and scripts.count("DELETE_MANY") == -(-len(old) // 16)
        assert resplits and len(resplits) == len(set(resplits))  # each story re-split once
        assert dd.index.pending_splits() == []


def meter_in_date_order(n: int = 200) -> list[Article]:
    """The first ``n`` METER articles, in publication order (then by id)."""
    return sorted(itertools.islice(read_paths([str(data_file("meter-dev.jsonl"))]), n),
                  key=lambda a: (a.published, a.id))


def straddling(items: list[Article]) -> list[Article]:
    """``items`` (in date order) re-dated 25 to a day from the first one's day, every other one a day
    later: most stories then straddle two days, so a retention pass leaves many of them to re-split."""
    base = items[0].published
    assert base is not None
    return [dataclasses.replace(a, published=base + datetime.timedelta(days=n // 25 + n % 2))
            for n, a in enumerate(items)]


def bulk_with_retention_scenario(url: str, settings: Settings, namespace: str) -> None:
    """With retention on, ``add_many`` gives the one-at-a-time assignments and keeps the same articles
    in the same stories, and most articles go in chunks: a batch breaks only at an article whose newer
    publication day starts a retention pass, which runs right after that article, as one at a time."""
    items = straddling(meter_in_date_order())
    with Deduper(settings, url=url, namespace=f"{namespace}-one") as one:
        expected = [(a.id, r.story, r.action, tuple(r.merged)) for a in items for r in [one.add(a)]]
        kept = sorted(a.id for a in items if a.id in one.index)
        stories = partition(one.index.story_of(kept))
    assert len(kept) < len(items) / 2  # retention deleted most of them
    with Deduper(settings, url=url, namespace=namespace) as dd:
        singles: list[str] = []  # articles ingested on their own
        real = dd.index.ingest
        dd.index.ingest = lambda e: singles.append(e.id) or real(e)  # type: ignore[method-assign]
        got = [(o.article.id, o.assignment.story, o.assignment.action, tuple(o.assignment.merged))
               for o in dd.add_many(items)]
        assert got == expected
        assert sorted(a.id for a in items if a.id in dd.index) == kept
        assert partition(dd.index.story_of(kept)) == stories
        assert dd.index.pending_splits() == []
        assert len(singles) < len(items) / 4  # one at a time, all 200 went on their own


def test_with_retention_on_a_batch_goes_in_chunks_between_passes_with_the_one_at_a_time_outcome(redis_url):
    bulk_with_retention_scenario(redis_url, Settings(retain_days=2), "bret")


# -- deletion and persistence -------------------------------------------------------------
def test_deleting_every_article_leaves_no_key(redis_url, seed_paths):
    items = articles(seed_paths, meter_n=60)
    with Deduper(SETTINGS, url=redis_url, namespace="del") as dd:
        for a in items:
            dd.add(a)
        assert len(all_keys(redis_url, "del")) > len(items)
        for a in items:
            dd.delete(a.id)
        assert len(dd.index) == 0 and dd.index.story_ids() == []
        assert all_keys(redis_url, "del") == []  # meta went with the last article
        assert dd.index.entries([items[0].id]) == {} and dd.index.story_of([items[0].id]) == {}
        assert all_keys(redis_url, "del") == []  # reading an emptied namespace writes nothing
        assert dd.add(items[0]).action == "new"  # the next write claims it again
        assert len(dd.index) == 1 and b"epoch" in dd.index._r.hgetall(key("del", "meta"))


@pytest.mark.parametrize("layout", ["slot", "spread"])
def test_a_process_that_cached_handles_is_not_misled_when_the_emptied_namespace_starts_again(
        redis_url, seed_paths, layout, monkeypatch):
    # Process a keeps the handles it saw (with their ids and signatures).  Once b empties the namespace, its
    # meta key goes and the handle counter with it.  Each epoch starts its handles at a random point; here
    # both start at 0, so b gives out handle 1 again: a would verify a rewrite against the deleted article
    # that had handle 1, unless its scripts refuse its old epoch and it forgets what it cached.
    monkeypatch.setattr(redis_index, "first_handle", lambda: 0)
    settings = dataclasses.replace(SETTINGS, redis_layout=layout)
    by_id = {a.id[:3]: a for a in read_paths(seed_paths) if isinstance(a, Article)}
    with Deduper(settings, url=redis_url, namespace="again") as a, \
            Deduper(settings, url=redis_url, namespace="again") as b:
        a.add(by_id["002"])
        a.add(by_id["003"])
        b.delete(by_id["002"].id)
        b.delete(by_id["003"].id)
        b.index.flush()
        assert len(b.index) == 0 and all_keys(redis_url, "again") == []
        b.add(by_id["000"])
        assert b.index._r.hget(key("again", "meta"), "seq") == b"1"  # the handle of 002 in a's cache
        joined = a.add(by_id["001"])
        assert (joined.action, joined.story) == ("joined", by_id["000"].id)
        for aid in (by_id["000"].id, by_id["001"].id):
            a.delete(aid)
    assert all_keys(redis_url, "again") == []


def test_a_process_finds_out_when_the_emptied_namespace_was_claimed_with_other_settings(redis_url, seed_paths):
    items = articles(seed_paths)
    other = dataclasses.replace(SETTINGS, seed=SETTINGS.seed + 1)
    with Deduper(SETTINGS, url=redis_url, namespace="reclaim") as a:
        a.add(items[0])
        a.delete(items[0].id)
        with Deduper(other, url=redis_url, namespace="reclaim") as b:
            b.add(items[1])
            with pytest.raises(IndexMismatch, match="namespace 'reclaim'"):
                a.add(items[2])
            assert len(b.index) == 1 and items[2].id not in b.index


@pytest.mark.parametrize("layout", ["slot", "spread"])
def test_a_cached_story_list_is_never_stale_even_when_the_clock_starts_again(redis_url, layout):
    # the full story list is cached under (clock, epoch, articles, stories): an emptied namespace starts
    # its clock again and could reach the same clock, articles and stories with other stories
    settings = dataclasses.replace(SETTINGS, redis_layout=layout)
    with open_index(settings, redis_url, namespace="tick") as a, open_index(settings, redis_url, namespace="tick") as b:
        a.ingest(entry("x", 1))
        assert [sid for sid, _ in a.story_versions()] == ["x"]
        clock = a._r.hget(key("tick", "meta"), "clock")
        b.delete("x")
        b.flush()
        b.ingest(entry("y", 50))
        assert a._r.hget(key("tick", "meta"), "clock") == clock
        assert [sid for sid, _ in a.story_versions()] == ["y"]


def test_nothing_is_lost_across_an_aof_restart(tmp_path, seed_paths):
    server = RedisServer(tmp_path / "aof", None, "--appendonly", "yes", "--appendfsync", "always").start()
    items = articles(seed_paths, meter_n=40)
    try:
        with Deduper(SETTINGS, url=server.url, namespace="aof") as dd:
            before = cluster(dd, items)
            story_ids = dd.index.story_ids()
        server.stop()
        server.start()
        with Deduper(SETTINGS, url=server.url, namespace="aof") as dd:
            assert len(dd.index) == len(items)
            assert partition(dd.index.story_of([a.id for a in items])) == before
            assert dd.index.story_ids() == story_ids
            assert dd.add(items[0]).action == "unchanged"
    finally:
        server.stop()


def test_open_index_survives_a_server_restart(tmp_path):
    server = RedisServer(tmp_path / "restart", None, "--appendonly", "yes").start()
    try:
        with RedisIndex(SETTINGS, url=server.url, namespace="r") as idx:
            idx.put(entry("a", 1))
            server.stop()
            server.start()
            assert "a" in idx  # the same client reconnects (retry with backoff)
    finally:
        server.stop()


def test_how_long_a_lost_server_is_waited_for_is_a_setting(tmp_path):
    """--redis-retry-s: with 8 s of retries an ingest rides out a server that is down for 2 s (as a Redis
    Cluster failover would be, for longer); with 0.5 s a call fails within about a second, naming the URL."""
    server = RedisServer(tmp_path / "retry", None, "--appendonly", "yes").start()
    patient = dataclasses.replace(SETTINGS, redis_retry_s=8.0)
    hasty = dataclasses.replace(SETTINGS, redis_retry_s=0.5)
    try:
        with RedisIndex(patient, url=server.url, namespace="r") as slow, \
                RedisIndex(hasty, url=server.url, namespace="r") as fast:
            assign(slow, entry("a", 1), patient)
            assert "a" in fast
            server.stop(kill=True)
            began = time.monotonic()
            with pytest.raises(IndexUnavailable, match=f"127.0.0.1:{server.port}"):
                fast.story_of(["a"])
            assert time.monotonic() - began < 2.0
            back = threading.Timer(2.0, server.start)
            back.start()
            began = time.monotonic()
            try:
                assert assign(slow, entry("b", 2), patient).action == "new"
            finally:
                back.join()
            assert time.monotonic() - began >= 1.5  # it waited for the server, not for a luckier moment
            assert fast.story_of(["a", "b"]) == {"a": "a", "b": "b"}  # the other one reconnects too
    finally:
        server.stop()


def test_every_call_on_a_lost_server_raises_an_error_naming_the_url(tmp_path):
    """Not redis-py's bare ConnectionError: the index's own error, naming the URL, from every entry point
    (len() once lost its guard when a method was added above it)."""
    server = RedisServer(tmp_path / "lost").start()
    try:
        with RedisIndex(SETTINGS, url=server.url, namespace="lost", retries=1) as idx:
            assign(idx, entry("a", 1), SETTINGS)
            server.stop(kill=True)
            calls = {
                "len": lambda: len(idx), "contains": lambda: "a" in idx, "entries": lambda: idx.entries(["a"]),
                "signatures": lambda: idx.signatures(["a"]), "story_of": lambda: idx.story_of(["a"]),
                "members": lambda: idx.members("a"), "story_ids": lambda: idx.story_ids(),
                "story_versions": lambda: idx.story_versions(), "candidates": lambda: idx.candidates(
                    entry("b", 1).signature), "sentence_counts": lambda: idx.sentence_counts([11]),
                "assign": lambda: assign(idx, entry("b", 1), SETTINGS), "delete": lambda: idx.delete("a"),
            }
            for name, call in calls.items():
                with pytest.raises(IndexUnavailable, match=f"127.0.0.1:{server.port}"):
                    call()
    finally:
        server.stop()


def test_a_delete_resplits_from_what_is_there_when_another_process_joins_the_story_meanwhile(redis_url, monkeypatch):
    """Deleting a bridge reads the story, splits it and writes the parts only if the story did not change
    in between; an article another process ingested into it meanwhile ends in the part it links to."""
    import dedup.stories as stories

    a = "Fire crews fought a blaze at the Riverside chemical plant in Hull, where 40 workers were evacuated."
    b = "Police closed the A63 near Hull after the chemical leak forced residents of Hessle to stay indoors."
    x = b + " The council said the road would reopen on Monday."
    with Deduper(SETTINGS, url=redis_url, namespace="race") as dd, \
            Deduper(SETTINGS, url=redis_url, namespace="race") as other:
        for i, t in (("a", a), ("b", b), ("c", a + " " + b)):
            dd.add(Article(id=i, text=t))
        assert len(set(dd.index.story_of(["a", "b", "c"]).values())) == 1
        real, calls = stories.components, []

        def components_with_a_concurrent_ingest(ids, index, settings):
            if not calls:  # between the read of the story and the write of its parts
                assert other.add(Article(id="x", text=x)).story == dd.story_of("b")
            calls.append(sorted(ids))
            return real(ids, index, settings)

        monkeypatch.setattr(stories, "components", components_with_a_concurrent_ingest)
        dd.delete("c")
        assert calls == [["a", "b"], ["a", "b", "x"]]  # the first split was refused, the second saw x
        story = dd.index.story_of(["a", "b", "x"])
        assert story["x"] == story["b"] != story["a"]
        # what one process would have made
        solo = Deduper(SETTINGS)
        for i, t in (("a", a), ("b", b), ("x", x)):
            solo.add(Article(id=i, text=t))
        assert len({solo.story_of("a"), solo.story_of("b")}) == 2 and solo.story_of("x") == solo.story_of("b")


HULL_A = "Fire crews fought a blaze at the Riverside chemical plant in Hull, where 40 workers were evacuated."
HULL_B = "Police closed the A63 near Hull after the chemical leak forced residents of Hessle to stay indoors."
STORM = "Storm Ciara flooded the Calder valley overnight and the Met Office warned of more rain in Yorkshire."


def _delete_stopped_before_the_resplit(dd: Deduper, article_id: str, monkeypatch) -> None:
    """``dd.delete`` as a process that dies between the delete and the re-split of its story does it."""
    import dedup.stories as stories

    class Stopped(Exception):
        pass

    def stop(*args):
        raise Stopped

    with monkeypatch.context() as m:
        m.setattr(stories, "resplit", stop)
        with pytest.raises(Stopped):
            dd.delete(article_id)


@pytest.mark.parametrize("layout", ["slot", "spread"])
def test_a_resplit_left_undone_by_a_stopped_process_is_done_by_the_next_to_open_the_index(
        redis_url, layout, monkeypatch):
    # c bridges a and b; deleting c must split them again, but the delete and the re-split are two steps
    settings = dataclasses.replace(SETTINGS, redis_layout=layout)
    with Deduper(settings, url=redis_url, namespace="owed") as dd:
        for i, t in (("a", HULL_A), ("b", HULL_B), ("c", HULL_A + " " + HULL_B)):
            dd.add(Article(id=i, text=t))
        _delete_stopped_before_the_resplit(dd, "c", monkeypatch)
        assert dd.index.story_of(["a", "b"]) == {"a": "a", "b": "a"}  # held together by an article that is gone
        assert dd.index.pending_splits() == ["a"]  # written with the delete, in the same script
    with Deduper(settings, url=redis_url, namespace="owed") as dd:  # the next process to open the index
        assert dd.index.story_of(["a", "b"]) == {"a": "a", "b": "b"}
        assert dd.index.pending_splits() == []
        dd.delete("a")
        dd.delete("b")
    assert all_keys(redis_url, "owed") == []


@pytest.mark.parametrize("layout", ["slot", "spread"])
def test_a_story_that_owes_a_resplit_hands_it_on_when_it_is_merged_into_another(redis_url, layout, monkeypatch):
    settings = dataclasses.replace(SETTINGS, redis_layout=layout)
    with Deduper(settings, url=redis_url, namespace="handed") as dd:
        for i, t in (("a", HULL_A), ("b", HULL_B), ("c", HULL_A + " " + HULL_B), ("0", STORM)):
            dd.add(Article(id=i, text=t))
        _delete_stopped_before_the_resplit(dd, "c", monkeypatch)
        merged = dd.add(Article(id="y", text=STORM + " " + HULL_A))  # folds story a (a, b) into story 0
        assert (merged.action, merged.story, merged.merged) == ("merged", "0", ["a"])
        assert dd.index.pending_splits() == ["0"]
    with Deduper(settings, url=redis_url, namespace="handed") as dd:
        story = dd.index.story_of(["0", "y", "a", "b"])
        assert story["0"] == story["y"] == story["a"] == "0" and story["b"] == "b"
        assert dd.index.pending_splits() == []


# -- bulk path --------------------------------------------------------------------------------
def test_bulk_ingest_gives_the_one_at_a_time_assignments(redis_url, seed_paths):
    """add_many on Redis goes through ingest_many: same stories, same founders, same actions, in order."""
    items = articles(seed_paths)
    items = items + items[:5]  # repeated ids go through assign (unchanged) at their place
    one = Deduper(SETTINGS)
    expected = [(a.id, r.story, r.action, tuple(r.merged)) for a, r in ((a, one.add(a)) for a in items)]
    with Deduper(SETTINGS, url=redis_url, namespace="bulk") as dd:
        calls = []
        real = dd.index.ingest_many
        dd.index.ingest_many = lambda *a, **k: calls.append(len(a[0])) or real(*a, **k)
        got = [(o.article.id, o.assignment.story, o.assignment.action, tuple(o.assignment.merged))
               for o in dd.add_many(items)]
        assert got == expected
        assert calls and max(calls) == len(items)  # the whole batch in one call, pipelined in chunks of 64
        assert partition(dd.index.story_of([a.id for a in items])) == partition(one.index.story_of([a.id for a in items]))
    assert any(action == "merged" for _, _, action, _ in expected)
    assert sum(action == "unchanged" for _, _, action, _ in expected) == 5


@pytest.mark.parametrize("chunk", [5, 1])
def test_pipelined_chunks_give_the_one_at_a_time_assignments(redis_url, seed_paths, chunk):
    """Each chunk is decided while the one before it is written, from a read that lacks that chunk: the
    client adds it (candidates, stories, merges), so the assignments are still the one-at-a-time ones.
    The server gets FIND(k+1), INGEST(k), FIND(k+2), INGEST(k+1), ..., each written while the calls
    before it are still running.  An id repeated right in the next chunk goes on its own at its place
    (unchanged)."""
    items = articles(seed_paths, meter_n=150)
    items = items[:7] + [items[3]] + items[7:]
    one = Deduper(SETTINGS)
    expected = [(a.id, r.story, r.action, tuple(r.merged)) for a, r in ((a, one.add(a)) for a in items)]
    dd = Deduper(SETTINGS)
    entries = [dd.prepare(a) for a in items]
    with RedisIndex(SETTINGS, url=redis_url, namespace=f"pipe{chunk}") as idx:
        direct = idx._direct
        writes: list[tuple[str, int]] = []  # (script, calls in flight when it was written)
        real_push = direct.push
        direct.push = lambda calls: writes.extend((n, direct._pending) for n, _ in calls) or real_push(calls)
        got = idx.ingest_many(entries, fallback=lambda e: assign(idx, e, SETTINGS),
                              chunk=chunk)
        assert [(e.id, r.story, r.action, tuple(r.merged)) for e, r in zip(entries, got)] == expected
        # really pipelined: reads and writes alternate, each written behind the one before it
        names = [n for n, _ in writes]
        assert names[1:] == ["INGEST", "FIND"] * ((len(names) - 1) // 2) + ["INGEST"] * ((len(names) - 1) % 2)
        behind = [n for n, in_flight in writes if in_flight > 0]
        assert len(behind) >= 2 * (len(items) // chunk) - 10
    assert any(action == "merged" for _, _, action, _ in expected)
    assert [a for _, _, a, _ in expected].count("unchanged") == 1


def test_a_pipelined_write_lost_in_flight_is_written_again_or_found_written(redis_url, seed_paths):
    """The connection drops after a chunk's read and the previous chunk's write were sent: the write may
    or may not have run.  It is sent again through redis-py (what ran answers 'exists' and is read again as
    stored), the chunk is read again, and the stories are the one-at-a-time ones."""
    items = articles(seed_paths, meter_n=60)
    dd = Deduper(SETTINGS)
    entries = [dd.prepare(a) for a in items]
    with RedisIndex(SETTINGS, url=redis_url, namespace="pipebreak") as idx:
        real_recv, n = idx._direct.recv, [0]

        def recv():
            n[0] += 1
            if n[0] in (4, 9):  # an INGEST reply (its FIND came first), then a FIND reply
                if n[0] == 4:
                    import time
                    time.sleep(0.05)  # let the server run the write before the connection goes
                idx._direct._conn._sock.close()
            return real_recv()

        idx._direct.recv = recv
        got = idx.ingest_many(entries, fallback=lambda e: assign(idx, e, SETTINGS),
                              chunk=5)
        assert n[0] > 9 and all(isinstance(r, Assignment) for r in got)
        assert len(idx) == len(entries)
        shared = partition(idx.story_of([e.id for e in entries]))
    assert shared == cluster(Deduper(SETTINGS), items)


def test_a_bulk_load_survives_a_server_that_lost_its_scripts(redis_url, seed_paths):
    """A new or restarted redis-server has no scripts cached: pipelined calls cannot fall back on redis-py
    (it would load the script and run it again out of order), so the bulk load loads them and reads the
    chunk again, at the start and when the cache is flushed mid-load."""
    items = articles(seed_paths, meter_n=60)
    one = Deduper(SETTINGS)
    expected = [(a.id, r.story, r.action) for a, r in ((a, one.add(a)) for a in items)]
    dd = Deduper(SETTINGS)
    entries = [dd.prepare(a) for a in items]
    admin = redis.Redis.from_url(redis_url)
    admin.script_flush()
    with RedisIndex(SETTINGS, url=redis_url, namespace="noscript") as idx:
        real_push, pushes = idx._direct.push, [0]

        def push(calls):
            pushes[0] += 1
            if pushes[0] == 6:
                admin.script_flush()  # mid-load, with calls in flight
            return real_push(calls)

        idx._direct.push = push
        real_load, loads = idx._load_scripts, [0]
        idx._load_scripts = lambda: loads.__setitem__(0, loads[0] + 1) or real_load()
        got = idx.ingest_many(entries, fallback=lambda e: assign(idx, e, SETTINGS),
                              chunk=5)
        assert all(isinstance(r, Assignment) for r in got), [r for r in got if not isinstance(r, Assignment)][:3]
        assert pushes[0] > 6 and len(idx) == len(entries)
        assert loads[0] == 2  # INGEST at the start (FIND went through redis-py), then after the flush
        # the chunk in flight when the cache went may have been written: then it is found stored (unchanged)
        assert [(e.id, r.story) for e, r in zip(entries, got)] == [(i, s) for i, s, _ in expected]
        assert sum(r.action != a for r, (_, _, a) in zip(got, expected)) <= 5
    admin.close()


def rival_after(monkeypatch, other: RedisIndex, calls: int, rival: Entry) -> list[tuple[str, dict]]:
    """The decisions made from now on (see watch_decisions), with ``other`` (another process) ingesting
    ``rival`` just before the ``calls``-th one: between a read and its write."""
    return watch_decisions(monkeypatch, lambda n: n == calls and other.ingest(rival))


@pytest.mark.parametrize("chunk", [64, 1])
def test_bulk_chunk_redoes_the_rest_after_a_concurrent_write(redis_url, chunk, monkeypatch):
    """A rival lands in a later article's bucket between the chunk's read and write: that article is redone.
    With one article per chunk the rival lands while the article before is being written (pipelined)."""
    with RedisIndex(SETTINGS, url=redis_url, namespace="bulkrace") as idx, \
            RedisIndex(SETTINGS, url=redis_url, namespace="bulkrace") as other:
        # chunk of 64: after x's read; chunks of 1: after y's read, while x is being written
        seen = rival_after(monkeypatch, other, 1 if chunk > 1 else 2, entry("rival", 5))
        x, y, z = entry("x", 1), entry("y", 5), entry("z", 1)
        results = idx.ingest_many([x, y, z], chunk=chunk)
        assert [(r.story, r.action) for r in results] == [("x", "new"), ("rival", "joined"), ("x", "joined")]
        # x was written, y conflicted and was decided again with the rival; z (a candidate of x) too
        assert seen[:3] == [("x", {}), ("y", {}), ("z", {"x": "x"})]
        assert ("y", {"rival": "rival"}) in seen[3:]
        assert idx.members("rival") == ["rival", "y"] and idx.members("x") == ["x", "z"]


@pytest.mark.parametrize("chunk", [64, 1, 2])
def test_bulk_chunk_sees_merges_made_earlier_in_the_same_chunk(redis_url, chunk):
    """b bridges a and c inside one chunk (or the chunk before, written while this one is decided);
    d, a candidate of c only, must join the merged story."""
    def art(aid: str, fills: list[int]) -> Entry:
        e = entry(aid, 0)
        e.signature.minhash[: len(fills)] = fills
        e.signature.minhash[len(fills):] = np.arange(len(fills), 32, dtype=np.uint32) + np.uint32(1000 * (ord(aid[0])))
        return e

    a, c = art("a", [1]), art("c", [2])
    b = art("b", [1])  # shares band 0 with a and band 1 with c
    b.signature.minhash[1] = c.signature.minhash[1]
    d = art("d", [9])
    d.signature.minhash[2] = c.signature.minhash[2]
    mem = MemoryIndex(SETTINGS)
    expected = [mem.ingest(e) for e in (a, c, b, d)]
    with RedisIndex(SETTINGS, url=redis_url, namespace="bulkmerge") as idx:
        got = idx.ingest_many([a, c, b, d], chunk=chunk)
        assert [(r.story, r.action, r.merged) for r in got] == [(r.story, r.action, r.merged) for r in expected]
        assert got[2].action == "merged" and got[3].story == "a"
        assert idx.members("a") == ["a", "b", "c", "d"]


def slot_buckets(idx: RedisIndex) -> dict[tuple[str, bytes], set[bytes]]:
    """(family, field) -> entries (handle + day byte), read from every bucket shard of the index (pieces joined)."""
    width = 2 + 4 * SETTINGS.rows
    pieces: dict[tuple[str, bytes], dict[int, bytes]] = {}
    for k in idx._r.scan_iter(match=f"{{{idx.namespace}}}:b:*"):
        fam = "b:" + k.decode().split(":")[2]
        for f, v in idx._r.hgetall(k).items():
            j, f = (0, f) if len(f) == width else (int.from_bytes(f[:2], "little"), f[2:])
            pieces.setdefault((fam, f), {})[j] = v
    out = {}
    for where, parts in pieces.items():
        v = b"".join(parts[j] for j in sorted(parts))
        out[where] = {v[j:j + 5] for j in range(0, len(v), 5)}
    return out


def check_period_buckets(idx: RedisIndex) -> None:
    """The invariant: every stored article is in its 32 buckets of its own period, and nowhere else, with
    the day's place in the period (whether the scripts or the bulk path's patch wrote the entry)."""
    want: dict[tuple[str, bytes], set[bytes]] = {}
    handles = {k.decode(): int(v).to_bytes(4, "little") for shard in idx._r.scan_iter(match=f"{{{idx.namespace}}}:h:*")
               for k, v in idx._r.hgetall(shard).items()}
    for aid, sig in idx.signatures(list(handles)).items():
        fam = bucket_family(day_tag(sig.day))
        packed = idx._fields(sig)
        w = len(packed) // SETTINGS.bands
        for b in range(SETTINGS.bands):
            want.setdefault((fam, packed[b * w:(b + 1) * w]), set()).add(period_entry(handles[aid], sig.day))
    assert slot_buckets(idx) == want


@pytest.mark.parametrize("chunk", [64, 3, 1])
def test_bulk_ingest_across_period_edges_gives_the_one_at_a_time_assignments(redis_url, chunk):
    """Pipelined chunks whose articles straddle period edges (and some undated) share buckets across
    periods: each article is written to its own period only, and the stories are the one-at-a-time ones."""
    p0 = 20_000 // PERIOD_DAYS * PERIOD_DAYS
    entries = []
    for n in range(80):
        day = None if n % 13 == 5 else p0 + (n * 7) % 40 - 4  # days on both sides of two edges
        entries.append(entry(f"a{n}", n % 5, day=day))
    mem = MemoryIndex(SETTINGS)
    expected = [mem.ingest(e) for e in entries]
    with RedisIndex(SETTINGS, url=redis_url, namespace=f"edges{chunk}") as idx:
        got = idx.ingest_many(entries, chunk=chunk)
        assert [(r.story, r.action, r.merged) for r in got] == [(r.story, r.action, r.merged) for r in expected]
        assert len({fam for fam, _ in slot_buckets(idx)}) == 5  # four periods and the undated family
        check_period_buckets(idx)
        for e in entries[::3]:
            idx.delete(e.id)
        check_period_buckets(idx)


def test_a_rival_written_in_the_next_period_between_read_and_write_is_not_missed(redis_url, monkeypatch):
    """An article at a period's last day reads the next period too.  A rival that lands there between its
    read and its write (another process) is in no bucket of its own period, so INGEST also compares what
    the other periods held (the digest after the bucket values) and decides again."""
    p = 20_000 // PERIOD_DAYS
    last = p * PERIOD_DAYS + PERIOD_DAYS - 1
    with RedisIndex(SETTINGS, url=redis_url, namespace="edgerace") as idx, \
            RedisIndex(SETTINGS, url=redis_url, namespace="edgerace") as other:
        seen = rival_after(monkeypatch, other, 2, entry("rival", 5, day=last + 1))  # after y's read, before its write
        x, y = entry("x", 1, day=last), entry("y", 5, day=last)
        results = idx.ingest_many([x, y], chunk=64)
        assert [(r.story, r.action) for r in results] == [("x", "new"), ("rival", "joined")]
        assert seen[:2] == [("x", {}), ("y", {})] and ("y", {"rival": "rival"}) in seen[2:]
        assert idx.members("rival") == ["rival", "y"]
        check_period_buckets(idx)


def test_a_pipelined_chunk_adds_the_chunk_before_to_the_other_periods_it_read(redis_url, monkeypatch):
    """y (first day of a period) is read before x (last day of the period before) is written, and an
    unrelated write moves the version meanwhile, so y's write re-checks.  The client added x to the
    digest of the other periods y reads (_patch), so the re-check passes: y is not read and decided again."""
    p = 20_000 // PERIOD_DAYS
    last = p * PERIOD_DAYS + PERIOD_DAYS - 1
    with RedisIndex(SETTINGS, url=redis_url, namespace="edgepatch") as idx, \
            RedisIndex(SETTINGS, url=redis_url, namespace="edgepatch") as other:
        # after y's read (its decision is the second); x's write is on its way
        calls = watch_decisions(monkeypatch, lambda n: n == 2 and other.ingest(entry("unrelated", 9, day=last + 1)))
        results = idx.ingest_many([entry("x", 1, day=last), entry("y", 1, day=last + 1)], chunk=1)
        assert [(r.story, r.action) for r in results] == [("x", "new"), ("x", "joined")]
        assert [aid for aid, _ in calls] == ["x", "y"]
        check_period_buckets(idx)


def test_every_story_slot_script_checks_the_epoch_before_anything_else():
    # a script that read or wrote before the check could act on an emptied namespace with a stale client's
    # handles (see check_epoch); the band script runs in other slots and has no epoch
    from dedup.index.redis.scripts import SLOT, SPREAD

    for module, helpers in ((SLOT, SLOT.HELPERS), (SPREAD, SPREAD.HELPERS)):
        for name in module.SCRIPTS:
            text = getattr(module, name)
            if name == "BAND":
                assert "check_epoch" not in text
                continue
            assert text.startswith(helpers), name
            lines = [ln for ln in text[len(helpers):].splitlines() if ln.strip() and not ln.startswith("--")]
            assert lines[0].startswith("check_epoch("), name
