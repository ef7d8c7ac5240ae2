"""Event evidence in the Redis index, both layouts (the spread one also on a real cluster): keys, postings
and links round trip, and go with their article on every path that removes one."""

from __future__ import annotations

import dataclasses
import itertools

import pytest

from dedup.index import open_index
from dedup.index.redis.errors import acl_rule
from dedup.index.redis.keys import key

from .test_index import SETTINGS, entry
from .test_index_spread import keys_of

LAYOUTS = ["redis", "spread", "spread-cluster"]
_names = itertools.count()


@pytest.fixture(params=LAYOUTS)
def opener(request):
    """Opens indexes of one namespace (a fresh one per test: the cluster is not flushed between tests)."""
    if request.param == "spread-cluster":
        url = request.getfixturevalue("redis_cluster")[0]
    else:
        url = request.getfixturevalue("redis_url")
    layout = "slot" if request.param == "redis" else "spread"
    ns = f"ev{next(_names)}"
    opened = []

    def open_(**changes):
        idx = open_index(dataclasses.replace(SETTINGS, redis_layout=layout, **changes), url, namespace=ns)
        opened.append(idx)
        return idx

    open_.url, open_.ns = url, ns
    yield open_
    for idx in opened:
        idx.drop()
        idx.close()


@pytest.fixture
def index(opener):
    return opener()


def event_keys_left(opener) -> set[str]:
    """The event keys (kinds ek, ep, el) of the namespace."""
    names = {k.decode() for ks in keys_of(opener.url, opener.ns).values() for k in ks}
    return {k for k in names if k.split(":")[1] in ("ek", "ep", "el")}


def fill(index, ids="abcd", day=None):
    for n, aid in enumerate(ids):
        index.put(entry(aid, n + 1, day=day))


def test_keys_and_holders_round_trip_sorted_leaving_out_what_is_missing(index):
    fill(index)
    index.add_event_keys({"b": [b"k2", b"\x00\xff:", b"k1"], "a": [b"k1", b"k1"], "c": []})
    index.add_event_keys({"c": [b"k1"], "zz": [b"k1", b"k9"]})  # zz is not stored: nothing recorded
    assert index.event_keys(["a", "b", "c", "d", "zz", "a"]) == {
        "a": [b"k1"], "b": [b"\x00\xff:", b"k1", b"k2"], "c": [b"k1"]}
    assert index.key_holders([b"k1", b"\x00\xff:", b"k9", b"nobody"]) == {
        b"k1": ["a", "b", "c"], b"\x00\xff:": ["b"]}
    assert index.event_keys([]) == {} and index.key_holders([]) == {}
    index.add_event_keys({"b": [b"k3"], "c": []})  # an article's keys replace those it held
    assert index.event_keys("abc") == {"a": [b"k1"], "b": [b"k3"]}
    assert index.key_holders([b"k1", b"k2", b"k3"]) == {b"k1": ["a"], b"k3": ["b"]}


def test_links_are_symmetric_and_sorted(index):
    fill(index)
    index.add_event_links([("c", "a"), ("a", "b"), ("b", "a"), ("a", "a"), ("a", "zz")])
    index.add_event_links([])
    assert index.event_links(["a", "b", "c", "d", "zz"]) == {"a": ["b", "c"], "b": ["a"], "c": ["a"]}


def test_delete_removes_keys_from_the_postings_and_links_both_ways(opener, index):
    fill(index)
    index.add_event_keys({"a": [b"k1", b"k2"], "b": [b"k1"], "c": [b"k2"]})
    index.add_event_links([("a", "b"), ("a", "c"), ("b", "c")])
    # the script names its keys as keys.key does
    mine = {key(opener.ns, "ek", "a"), key(opener.ns, "ep", b"k1".hex()), key(opener.ns, "el", "a")}
    assert mine <= event_keys_left(opener)
    index.delete("a")
    assert index.event_keys(["a", "b", "c"]) == {"b": [b"k1"], "c": [b"k2"]}
    assert index.key_holders([b"k1", b"k2"]) == {b"k1": ["b"], b"k2": ["c"]}
    assert index.event_links(["a", "b", "c"]) == {"b": ["c"], "c": ["b"]}
    assert not {key(opener.ns, "ek", "a"), key(opener.ns, "el", "a")} & event_keys_left(opener)
    index.delete_many(["b", "c", "d"])
    assert index.key_holders([b"k1", b"k2"]) == {} and index.event_links(["b", "c"]) == {}
    assert event_keys_left(opener) == set()
    assert keys_of(opener.url, opener.ns) and len(index) == 0  # (the band groups' empty shards aside)


def test_replacing_a_stored_article_drops_its_evidence(index):
    fill(index, "ab")
    index.add_event_keys({"a": [b"k1"], "b": [b"k1"]})
    index.add_event_links([("a", "b")])
    index.put(entry("a", 9))  # a new version: the keys are the core's to record again
    assert index.key_holders([b"k1"]) == {b"k1": ["b"]}
    assert index.event_keys(["a"]) == {} and index.event_links(["a", "b"]) == {}


def test_retention_removes_the_expired_articles_evidence(opener):
    index = opener(retain_days=2)
    fill(index, "ab", day=100)
    fill(index, "cd", day=110)
    index.add_event_keys({aid: [b"k"] for aid in "abcd"})
    index.add_event_links([("a", "c"), ("b", "d"), ("c", "d")])
    assert sorted(index.expire()) == ["a", "b"]
    assert index.key_holders([b"k"]) == {b"k": ["c", "d"]}
    assert index.event_links("abcd") == {"c": ["d"], "d": ["c"]}
    assert {k.rsplit(":", 1)[1] for k in event_keys_left(opener) if ":ek:" in k} == {"c", "d"}


def test_drop_removes_the_evidence(opener, index):
    fill(index, "ab")
    index.add_event_keys({"a": [b"k1"], "b": [b"k1"]})
    index.add_event_links([("a", "b")])
    assert event_keys_left(opener)
    index.drop()
    assert keys_of(opener.url, opener.ns) == {p: set() for p in keys_of(opener.url, opener.ns)}
    assert index.key_holders([b"k1"]) == {} and index.event_links("ab") == {}


@pytest.mark.parametrize("layout", ["slot", "spread"])
def test_a_user_restricted_to_the_namespace_stores_and_removes_evidence(secure_redis, layout):
    secure_redis.add_user("evs", "Ev-s3cret-91", acl_rule("evs"))
    with open_index(dataclasses.replace(SETTINGS, redis_layout=layout), secure_redis.url("evs", "Ev-s3cret-91"),
                    namespace="evs") as index:
        fill(index, "ab")
        index.add_event_keys({"a": [b"k1"], "b": [b"k1"]})
        index.add_event_links([("a", "b")])
        assert index.key_holders([b"k1"]) == {b"k1": ["a", "b"]} and index.event_links("a") == {"a": ["b"]}
        index.delete("a")
        assert index.key_holders([b"k1"]) == {b"k1": ["b"]} and index.event_links("ab") == {}
        index.delete("b")
    admin = secure_redis.admin()
    try:
        assert not [e for e in admin.acl_log() if e.get("username") == "evs"]
        assert admin.keys("{evs}:e[kpl]:*") == []
    finally:
        admin.close()
