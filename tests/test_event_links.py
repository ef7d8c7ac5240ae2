"""The storage contract of event evidence: every index keeps event keys and links the same way.

The index stores and fetches; which pairs are links is the core's decision (dedup.events).  The
``index`` fixture (tests/conftest.py) is parametrized over the implementations.
"""

import dataclasses

import numpy as np
import pytest

from dedup import Deduper
from dedup.events import group_events
from dedup.readers import read_paths
from dedup.records import Entry, Signature
from dedup.settings import Settings
from dedup.signature import quantized_weights

from .conftest import SEEDS

SETTINGS = Settings()


def entry(aid: str, minhash_fill: int = 5) -> Entry:
    mh = np.full(SETTINGS.num_perm, minhash_fill, dtype=np.uint32)
    sig = Signature(minhash=mh, term_ids=np.array([1, 2, 3], dtype=np.uint32),
                    term_weights=quantized_weights(np.full(3, 255)), shingles=np.array([7, 8, 9], dtype=np.uint32), day=None)
    return Entry(id=aid, title=f"t {aid}", text=f"text of {aid}", source="src", published="", url="",
                 signature=sig, sentence_hashes=[11, 12])


def stored(index, *ids: str) -> None:
    for i in ids:
        index.put(entry(i))
        index.set_story(i, [i])


BAND = b"b\x05\x00\x00\x00"
WORD = b"w\x00\x00\x00\x07"
NAME = b"w\x00\x12\x34\x56"


def test_keys_are_recorded_per_article_and_as_postings(index):
    stored(index, "a", "b", "c")
    index.add_event_keys({"a": [BAND, WORD], "b": [WORD, NAME]})
    index.add_event_keys({"c": [WORD]})
    assert {i: sorted(ks) for i, ks in index.event_keys(["a", "b", "c", "missing"]).items()} == {
        "a": sorted([BAND, WORD]), "b": sorted([WORD, NAME]), "c": [WORD]}
    assert index.key_holders([WORD, NAME, BAND, b"w\xff\xff\xff\xff"]) == {
        WORD: ["a", "b", "c"], NAME: ["b"], BAND: ["a"]}


def test_keys_are_opaque_bytes(index):
    stored(index, "a")
    odd = b"\x00\xff:{slot}\n"
    index.add_event_keys({"a": [odd]})
    assert index.event_keys(["a"]) == {"a": [odd]}
    assert index.key_holders([odd]) == {odd: ["a"]}


def test_a_link_is_symmetric_and_stored_once(index):
    stored(index, "a", "b", "c")
    index.add_event_links([("a", "b"), ("b", "a"), ("c", "a")])
    assert index.event_links(["a", "b", "c", "missing"]) == {"a": ["b", "c"], "b": ["a"], "c": ["a"]}


def test_nothing_stored_reads_empty(index):
    assert index.event_keys(["a"]) == {}
    assert index.key_holders([WORD]) == {}
    assert index.event_links(["a"]) == {}


def test_deleting_an_article_removes_its_keys_and_its_links_both_ways(index):
    stored(index, "a", "b", "c")
    index.add_event_keys({"a": [WORD, NAME], "b": [WORD], "c": [WORD]})
    index.add_event_links([("a", "b"), ("b", "c")])
    index.delete("b")
    assert {i: sorted(ks) for i, ks in index.event_keys(["a", "b", "c"]).items()} == {"a": sorted([WORD, NAME]),
                                                                                      "c": [WORD]}
    assert index.key_holders([WORD, NAME]) == {WORD: ["a", "c"], NAME: ["a"]}
    assert index.event_links(["a", "b", "c"]) == {}
    index.delete("a")
    assert index.key_holders([WORD, NAME]) == {WORD: ["c"]}


def test_a_replaced_article_starts_without_keys_or_links(index):
    stored(index, "a", "b")
    index.add_event_keys({"a": [WORD], "b": [WORD]})
    index.add_event_links([("a", "b")])
    index.put(entry("a", minhash_fill=6))  # a new version of a stored id
    assert index.event_keys(["a"]) == {}
    assert index.key_holders([WORD]) == {WORD: ["b"]}
    assert index.event_links(["a", "b"]) == {}


def test_drop_removes_keys_and_links(index):
    stored(index, "a", "b")
    index.add_event_keys({"a": [WORD], "b": [WORD]})
    index.add_event_links([("a", "b")])
    index.drop()
    assert index.event_keys(["a", "b"]) == {}
    assert index.key_holders([WORD]) == {}
    assert index.event_links(["a", "b"]) == {}


def test_events_kept_through_any_index_equal_the_batch_view(index):
    """The core decides and the index only stores: on every index, seeds sent one at a time and in a batch,
    with a delete and a new version between, give the events the batch computation gives."""
    seeds = list(read_paths([str(SEEDS)]))
    dd = Deduper(SETTINGS, index=index)
    dd.add(seeds[3])
    list(dd.add_many(seeds[:3] + seeds[4:]))
    dd.delete(seeds[1].id)
    dd.add(dataclasses.replace(seeds[2], text=seeds[2].text + "\n\nThe talks resume on Friday."))
    story_of = {a: s for s, ids in dd.members_many(index.story_ids()).items() for a in ids}
    batch = group_events(list(dd.articles(story_of).values()), story_of, SETTINGS)
    assert dd.events() == batch
    assert len(set(batch.values())) == 3  # 000 alone (its rewrite went), 002 with 003, 004 alone
    assert dd.event_of(story_of[seeds[3].id]) == (batch[story_of[seeds[3].id]],
                                                  sorted({story_of[seeds[2].id], story_of[seeds[3].id]}))
