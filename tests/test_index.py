"""The storage contract: every index implementation passes the same tests.

The ``index`` fixture (tests/conftest.py) is parametrized over the implementations; the Redis ones
run against the session's throwaway redis-server.
"""

import numpy as np

from dedup.records import Entry, Signature
from dedup.settings import Settings
from dedup.signature import quantized_weights

SETTINGS = Settings()


def entry(aid: str, minhash_fill: int, day=None, terms=(1, 2, 3)) -> Entry:
    mh = np.full(SETTINGS.num_perm, minhash_fill, dtype=np.uint32)
    w = quantized_weights(np.full(len(terms), 255))  # equal weights, as signing quantizes them
    sig = Signature(minhash=mh, term_ids=np.array(terms, dtype=np.uint32), term_weights=w,
                    shingles=np.array([7, 8, 9], dtype=np.uint32), day=day)
    return Entry(id=aid, title=f"t {aid}", text=f"text of {aid}", source="src", published="", url="",
                 signature=sig, sentence_hashes=[11, 12])


def test_put_then_candidates_finds_articles_sharing_a_band(index):
    index.put(entry("a", 5))
    index.put(entry("b", 5))
    index.put(entry("c", 6))
    assert index.candidates(entry("q", 5).signature) == {"a", "b"}
    assert len(index) == 3 and "a" in index and "zz" not in index


def test_candidates_respect_the_publication_window(index):
    index.put(entry("old", 5, day=100))
    index.put(entry("near", 5, day=110))
    assert index.candidates(entry("q", 5, day=111).signature) == {"near"}
    assert index.candidates(entry("q", 5, day=None).signature) == {"old", "near"}


def test_undated_articles_match_any_day_both_ways(index):
    index.put(entry("undated", 5))
    index.put(entry("dated", 5, day=200))
    assert index.candidates(entry("q", 5, day=10).signature) == {"undated"}
    assert index.candidates(entry("q", 5, day=201).signature) == {"undated", "dated"}


def test_deleting_from_a_shared_bucket_keeps_the_others(index):
    for a in "abc":
        index.put(entry(a, 5, day=3))
    index.delete("b")
    assert index.candidates(entry("q", 5, day=3).signature) == {"a", "c"}
    index.delete("a")
    index.delete("c")
    assert index.candidates(entry("q", 5, day=3).signature) == set()


def test_signatures_and_entries_round_trip(index):
    e = entry("a", 5, day=3, terms=(4, 9))
    index.put(e)
    sig = index.signatures(["a", "missing"])["a"]
    assert np.array_equal(sig.minhash, e.signature.minhash)
    assert np.array_equal(sig.term_ids, e.signature.term_ids)
    assert np.allclose(sig.term_weights, e.signature.term_weights)
    assert np.array_equal(sig.shingles, e.signature.shingles)
    assert sig.day == 3
    got = index.entries(["a"])["a"]
    assert (got.title, got.text, got.source) == (e.title, e.text, e.source)


def test_story_membership_moves_and_empty_stories_vanish(index):
    for a in "abc":
        index.put(entry(a, 5))
    index.set_story("s1", ["a", "b"])
    index.set_story("s2", ["c"])
    index.set_story("s1", ["c"])
    assert index.members("s1") == ["a", "b", "c"]
    assert index.members("s2") == []
    assert "s2" not in index.story_ids()
    assert index.story_of(["a", "c"]) == {"a": "s1", "c": "s1"}


def test_delete_removes_an_article_everywhere(index):
    index.put(entry("a", 5))
    index.set_story("a", ["a"])
    assert index.sentence_counts([11]) == [1]
    removed = index.delete("a")
    assert removed is not None and removed.id == "a"
    assert "a" not in index and len(index) == 0
    assert index.candidates(entry("q", 5).signature) == set()
    assert index.story_ids() == [] and index.sentence_counts([11]) == [0]
    assert index.delete("a") is None


def test_story_ids_list_most_recently_changed_first(index):
    for a in "ab":
        index.put(entry(a, 5))
    index.set_story("a", ["a"])
    index.set_story("b", ["b"])
    assert index.story_ids() == ["b", "a"]
    index.set_story("a", ["a"])
    assert index.story_ids()[0] == "a"


def test_members_many_reads_several_stories_at_once(index):
    for a in "abc":
        index.put(entry(a, 5))
    index.set_story("s1", ["b", "a"])
    index.set_story("s2", ["c"])
    assert index.members_many(["s2", "nope", "s1", "s2"]) == {"s2": ["c"], "s1": ["a", "b"]}
    assert index.members_many([]) == {}


def test_story_versions_change_with_every_story_change(index):
    for a in "abc":
        index.put(entry(a, 5))
    index.set_story("s1", ["a"])
    index.set_story("s2", ["b"])
    first = dict(index.story_versions())
    assert [s for s, _ in index.story_versions()] == index.story_ids() == ["s2", "s1"]
    assert index.story_versions(limit=1) == index.story_versions()[:1]
    assert index.story_versions(limit=0) == []
    index.set_story("s1", ["c"])  # grew
    grown = dict(index.story_versions())
    assert grown["s1"] != first["s1"] and grown["s2"] == first["s2"]
    index.put(entry("b", 6))  # article replaced in place: its story must not keep its version
    after = dict(index.story_versions())
    assert after.get("s2") != grown["s2"]
    assert after["s1"] == grown["s1"]
    index.put(entry("d", 7))
    index.set_story("s3", ["d"])
    assert [s for s, _ in index.story_versions()][0] == "s3"
    index.delete("d")  # a story vanishing with its last article must not linger in a cached list
    assert "s3" not in dict(index.story_versions())
    index.put(entry("d", 7))  # same article count again, still no story
    assert [s for s, _ in index.story_versions()] == index.story_ids()


def test_in_process_window_reads_only_days_in_reach_however_long_the_window():
    """A window of a century reads the stored days, not 73,000 candidate days, and finds the same articles."""
    from dedup.index.memory import MemoryIndex
    near, far = Settings(window_days=2), Settings(window_days=36500)
    for settings in (near, far):
        idx = MemoryIndex(settings)
        for i, day in enumerate([700_000, 700_002, 700_010, None]):
            sig = Signature(minhash=np.full(settings.num_perm, 7, dtype=np.uint32), term_ids=np.array([1], dtype=np.uint32),
                            term_weights=quantized_weights([255]), shingles=np.array([1], dtype=np.uint32), day=day)
            idx.put(Entry(id=f"a{i}", title="", text="x", source="", published="", url="", signature=sig, sentence_hashes=[]))
        probe = idx._entries["a0"].signature
        got = idx.candidates(probe)
        assert got == ({"a0", "a1", "a3"} if settings is near else {"a0", "a1", "a2", "a3"})


def test_drop_leaves_an_empty_index_that_takes_articles_again(index):
    index.put(entry("a", 5))
    index.set_story("a", ["a"])
    assert index.drop() > 0
    assert len(index) == 0 and "a" not in index and index.story_ids() == []
    assert index.candidates(entry("q", 5).signature) == set()
    index.put(entry("b", 5))
    assert index.candidates(entry("q", 5).signature) == {"b"}
