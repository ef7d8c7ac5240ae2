"""The client's copy of the buckets (mirror.py): what it expects, and that a wrong guess costs only time.

A streamed article whose candidates the copy knows is decided before the read and written by FIND in one
round trip; the server writes the guess only if it finds exactly the expected candidates in the expected
stories.  These tests make the copy wrong in each way it can be (a candidate it lacks, one deleted, a story
moved elsewhere) and check that the outcome is the one a client without a copy gets.
"""

from __future__ import annotations

import dataclasses
import gc

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from dedup.index.redis.slot import RedisIndex
from dedup.index.redis.keys import UNDATED_TAG, tag_within
from dedup.index.redis.mirror import BucketMirror
from dedup.readers import read_paths
from dedup.records import Article, Entry, Signature
from dedup.service import Deduper
from dedup.settings import Settings
from dedup.signature import quantized_weights
from dedup.stories import assign

from .conftest import data_file

SETTINGS = Settings()
NO_COPY = dataclasses.replace(SETTINGS, redis_mirror=0)


def h(n: int) -> bytes:
    return n.to_bytes(4, "little")


def keys(*values: int) -> list[bytes]:
    return [i.to_bytes(2, "little") + v.to_bytes(4, "little") for i, v in enumerate(values)]


# -- the copy on its own -------------------------------------------------------------------
def test_expect_answers_the_handles_sharing_a_bucket_within_the_window_with_their_stories():
    m = BucketMirror(capacity=10, field_width=6)
    m.add(h(1), keys(5, 6), day=100, story="s1")
    m.add(h(2), keys(5, 7), day=103, story="s2")  # shares band 0, three days later
    m.add(h(3), keys(9, 9), day=100, story="s3")  # shares nothing
    m.add(h(4), keys(8, 6), day=None, story="s4")  # undated: within every window
    assert m.expect(keys(5, 6), day=100, window=1) == {h(1): "s1", h(4): "s4"}
    assert m.expect(keys(5, 6), day=100, window=3) == {h(1): "s1", h(2): "s2", h(4): "s4"}
    assert m.expect(keys(5, 6), day=None, window=1) == {h(1): "s1", h(2): "s2", h(4): "s4"}


@given(tag=st.integers(0, UNDATED_TAG), day=st.one_of(st.none(), st.integers(-10**6, 10**6)),
       window=st.integers(0, 40000))
def test_expect_filters_by_day_tag_exactly_as_find_does(tag, day, window):
    """The copy inlines keys.tag_within (FIND's filter): they must agree on every entry."""
    m = BucketMirror(capacity=4, field_width=6)
    m.add(h(1), keys(5), day=None, story="s")
    m._tag[h(1)] = tag
    assert (h(1) in m.expect(keys(5), day, window)) == tag_within(tag, day, window)


def test_the_oldest_article_is_evicted_at_capacity_and_leaves_every_bucket():
    m = BucketMirror(capacity=2, field_width=6)
    m.add(h(1), keys(5, 6), day=1, story="a")
    m.add(h(2), keys(5, 7), day=1, story="b")
    m.add(h(3), keys(5, 8), day=1, story="c")
    assert len(m) == 2 and h(1) not in m
    assert m.expect(keys(5, 6), day=1, window=1) == {h(2): "b", h(3): "c"}
    m.discard(h(2))
    m.discard(h(3))
    assert len(m) == 0 and m._buckets == {} and m._members == {}


def test_a_merge_moves_every_member_of_the_merged_stories():
    m = BucketMirror(capacity=10, field_width=6)
    m.add(h(1), keys(1), day=1, story="a")
    m.add(h(2), keys(9, 2), day=1, story="b")
    m.add(h(3), keys(9, 9, 3), day=1, story="b")
    m.merged("a", ["b"])
    m.add(h(4), keys(1, 2), day=1, story="a")
    assert m.expect(keys(1, 2, 3), day=1, window=1) == {h(1): "a", h(2): "a", h(3): "a", h(4): "a"}
    assert {story: set(handles) for story, handles in m._members.items()} == {"a": {h(1), h(2), h(3), h(4)}}


def test_learning_an_answer_drops_what_find_did_not_find_and_takes_its_stories():
    m = BucketMirror(capacity=10, field_width=6)
    m.add(h(1), keys(1), day=1, story="a")
    m.add(h(2), keys(1), day=1, story="a")
    m.add(h(3), keys(1), day=50, story="c")  # outside the window: FIND could not have answered it
    m.learn(keys(1), day=1, window=1, found={h(2): "z", h(9): "q"})
    assert h(1) not in m and h(3) in m
    assert m.expect(keys(1), day=1, window=1) == {h(2): "z"}


def test_guessing_stops_after_misses_but_for_a_probe_now_and_then():
    m = BucketMirror(capacity=10, field_width=6)
    assert m.worth_guessing()
    for _ in range(20):
        m.scored(False)
    asked = [m.worth_guessing() for _ in range(64)]
    assert 1 <= sum(asked) <= 3  # one probe per 32 articles
    for _ in range(40):
        m.scored(True)
    assert m.worth_guessing()


def test_no_guess_unless_the_client_holds_every_expected_signature():
    m = BucketMirror(capacity=10, field_width=6)
    assert m.expected(keys(1), day=1, window=1, have={}) is None  # an empty copy knows nothing
    m.written(h(1), keys(1), day=1, story="a", merged=[])
    assert m.expected(keys(1), day=1, window=1, have={}) is None  # it could not verify h(1)
    assert m.expected(keys(1), day=1, window=1, have={h(1): "sig"}) == {h(1): "a"}
    assert m.expected(keys(2), day=1, window=1, have={}) == {}  # nothing shares a bucket: a guess of "new"


def test_the_copy_leaves_nothing_for_the_garbage_collector_to_walk():
    """A worker keeps the copy for its whole life: containers the collector tracks (a list per bucket, a
    set per story) made every full collection walk ~17 more objects per article, ~5% of a streamed
    article's time.  What it holds now is untracked once a collection has seen it."""
    m = BucketMirror(capacity=100, field_width=6)
    for n in range(50):
        m.written(h(n), keys(n % 7, n % 5, n), day=1, story=f"s{n % 3}", merged=["s2"] if n == 40 else [])
    m.discard(h(3))
    gc.collect()
    held = [m._buckets, m._keys, m._tag, m._story, m._members]
    tracked = [v for d in held for v in d.values() if gc.is_tracked(v)]
    assert tracked == []
    assert m._buckets[keys(3)[0]] == tuple(h(n) for n in (10, 17, 24, 31, 38, 45))  # n % 7 == 3, less h(3)


def test_capacity_zero_keeps_nothing():
    m = BucketMirror(capacity=0, field_width=6)
    m.add(h(1), keys(1), day=1, story="a")
    m.written(h(2), keys(1), day=1, story="a", merged=[])
    m.learn(keys(1), day=1, window=1, found={h(3): "a"}, lacking=lambda h: (keys(1), 1))
    assert len(m) == 0 and m.expect(keys(1), day=1, window=1) == {}


# -- a wrong copy against a real server -------------------------------------------------------
def entry(aid: str, minhash: list[int], day: int | None = None) -> Entry:
    """An article with this minhash; every pair of these verifies as one story (same words, same trigram)."""
    sig = Signature(minhash=np.array(minhash, dtype=np.uint32), term_ids=np.array([1, 2], dtype=np.uint32),
                    term_weights=quantized_weights([191, 255]), shingles=np.array([3], dtype=np.uint32), day=day)
    return Entry(aid, "title", "text " + aid, "src", "", "", sig, [11, 12])


N = SETTINGS.num_perm
LEFT = list(range(1, N + 1))  # shares every band with the articles of story "a"
RIGHT = list(range(1001, 1001 + N))  # shares nothing with LEFT
BRIDGE = LEFT[:N // 2] + RIGHT[N // 2:]  # shares half the bands with each


def test_a_candidate_the_copy_lacks_is_not_missed(redis_url):
    """Another worker founds story "p" in buckets our copy knows nothing of; our article bridges it and
    story "a": the guess (join "a") is refused, and the article merges the two as a copyless client would."""
    with RedisIndex(SETTINGS, url=redis_url, namespace="lack") as idx, \
            RedisIndex(SETTINGS, url=redis_url, namespace="lack") as other:
        assign(idx, entry("a", LEFT), SETTINGS)
        assign(idx, entry("b", LEFT), SETTINGS)
        assign(other, entry("p", RIGHT), SETTINGS)
        result = assign(idx, entry("x", BRIDGE), SETTINGS)
        assert (result.action, result.story, result.merged) == ("merged", "a", ["p"])
        assert idx.story_of(["a", "b", "p", "x"]) == dict.fromkeys(["a", "b", "p", "x"], "a")
        assert len(idx._mirror) == 4  # it learnt p from the answer


def test_a_candidate_deleted_elsewhere_is_not_counted(redis_url):
    with RedisIndex(SETTINGS, url=redis_url, namespace="gone") as idx, \
            RedisIndex(SETTINGS, url=redis_url, namespace="gone") as other:
        assign(idx, entry("a", LEFT), SETTINGS)
        assign(idx, entry("p", RIGHT), SETTINGS)
        other.delete("p")  # the copy still holds p
        result = assign(idx, entry("x", BRIDGE), SETTINGS)
        assert (result.action, result.story, result.merged) == ("joined", "a", [])
        assert idx.story_of(["a", "x"]) == {"a": "a", "x": "a"} and "p" not in idx
        assert len(idx._mirror) == 2  # p forgotten


def test_a_story_moved_elsewhere_is_not_guessed_from_the_copy(redis_url):
    """Another worker merges "a" into "p" behind our back; our copy still has "a": the guess is refused."""
    with RedisIndex(SETTINGS, url=redis_url, namespace="moved") as idx, \
            RedisIndex(SETTINGS, url=redis_url, namespace="moved") as other:
        assign(other, entry("p", RIGHT), SETTINGS)
        assign(idx, entry("q", LEFT), SETTINGS)  # story "q": ours, in our copy
        assign(other, entry("m", BRIDGE), SETTINGS)  # merges q into p (p < q)
        result = assign(idx, entry("y", LEFT), SETTINGS)
        assert (result.action, result.story) == ("joined", "p")
        assert idx.story_of(["p", "q", "m", "y"]) == dict.fromkeys(["p", "q", "m", "y"], "p")


def test_a_story_named_after_the_article_stops_the_guess(redis_url):
    """The guess decides as if no story carries the article's id; when one does, FIND refuses it and the
    decider picks another name, as without a copy."""
    with RedisIndex(SETTINGS, url=redis_url, namespace="named") as idx:
        assign(idx, entry("a", LEFT), SETTINGS)
        idx.set_story("z", ["a"])  # story "z" is now named after the next article's id
        result = assign(idx, entry("z", RIGHT), SETTINGS)
        assert (result.action, result.story) == ("new", "z~2")


def test_streamed_assignments_are_the_same_with_and_without_the_copy(redis_url):
    """Same decisions, story ids included, article by article: the copy changes round trips, nothing else."""
    items = [a for a in read_paths([str(data_file("meter-dev.jsonl"))]) if isinstance(a, Article)][:250]
    outcomes = []
    for settings, ns in ((NO_COPY, "off"), (SETTINGS, "on")):
        with Deduper(settings, url=redis_url, namespace=ns) as dd:
            outcomes.append([(a.id, r.story, r.action, tuple(r.merged)) for a in items for r in [dd.add(a)]])
            if ns == "on":
                assert len(dd.index._mirror) == len(items)
    assert outcomes[0] == outcomes[1]
    assert any(action == "joined" for _, _, action, _ in outcomes[0])
