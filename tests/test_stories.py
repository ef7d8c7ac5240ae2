"""An article's life in an index: ingest (unchanged, replaced), delete and re-split, arrival order."""

import dataclasses
import random

from hypothesis import given, settings, strategies as st

from dedup import Article, Deduper
from dedup.readers import read_paths

from .conftest import SEEDS, meter_articles


def seeds():
    return [a for a in read_paths([str(SEEDS)])]


def partition(dd: Deduper, ids) -> set[frozenset]:
    story_of = dd.index.story_of(ids)
    groups: dict[str, set] = {}
    for i, s in story_of.items():
        groups.setdefault(s, set()).add(i)
    return {frozenset(g) for g in groups.values()}


def test_seed_rewrites_form_one_story_and_other_wires_stay_apart():
    dd = Deduper()
    arts = seeds()
    for a in arts:
        dd.add(a)
    stories = partition(dd, [a.id for a in arts])
    ids = sorted(a.id for a in arts)
    assert frozenset(ids[:2]) in stories
    assert {frozenset([i]) for i in ids[2:]} <= stories


def test_an_article_bridging_two_stories_merges_them():
    dd = Deduper()
    a = "Fire crews fought a blaze at the Riverside chemical plant in Hull, where 40 workers were evacuated."
    b = "Police closed the A63 near Hull after the chemical leak forced residents of Hessle to stay indoors."
    bridge = a + " " + b
    r1 = dd.add(Article(id="a", text=a))
    r2 = dd.add(Article(id="b", text=b))
    r3 = dd.add(Article(id="c", text=bridge))
    assert (r1.action, r2.action) == ("new", "new")
    assert r3.action == "merged" and r3.merged == ["b"] and r3.story == "a"
    assert dd.story_of("b") == "a"


def test_the_same_article_twice_changes_nothing_and_a_new_version_replaces_it():
    dd = Deduper()
    art = seeds()[0]
    first = dd.add(art)
    again = dd.add(art)
    assert again.action == "unchanged" and again.story == first.story
    changed = Article(id=art.id, text=art.text + "\n\nA new paragraph was added by the desk tonight.")
    assert dd.add(changed).action == "replaced"
    assert len(dd.index) == 1


def test_deleting_the_bridge_splits_the_story_again():
    dd = Deduper()
    a = "Fire crews fought a blaze at the Riverside chemical plant in Hull, where 40 workers were evacuated."
    b = "Police closed the A63 near Hull after the chemical leak forced residents of Hessle to stay indoors."
    for i, t in (("a", a), ("b", b), ("c", a + " " + b)):
        dd.add(Article(id=i, text=t))
    stories = dd.delete("c")
    assert sorted(stories) == ["a", "b"]
    assert dd.story_of("a") != dd.story_of("b")


def _components_by_asking_the_index(ids, index, settings):
    """The link graph's parts among ``ids`` the direct way: each member's candidates from the index,
    each candidate pair verified on its own (what components() must agree with)."""
    from dedup.clustering import verify

    sigs = index.signatures(ids)
    part = {a: {a} for a in ids}
    for a in ids:
        for c in index.candidates(sigs[a]):
            if c in part and c != a and verify(sigs[a], sigs[c], settings)[0] and part[a] is not part[c]:
                merged = part[a] | part[c]
                for m in merged:
                    part[m] = merged
    return {frozenset(p) for p in part.values()}


def test_a_story_splits_into_the_parts_its_candidate_links_connect():
    """components() finds the candidate pairs among a story's members from their band values and
    verifies them in one batch; the parts are those of asking the index for each member's candidates."""
    from dedup.stories import components

    dd = Deduper()
    for a in seeds() + meter_articles():
        dd.add(a)
    stories = [dd.index.members(s) for s in dd.index.story_ids()]
    big = [m for m in stories if len(m) >= 3]
    assert len(big) >= 5  # the slice has stories of several rewrites
    split = 0
    for members in big:
        for rest in (members, members[1:], members[:-1], members[::2]):
            parts = components(rest, dd.index, dd.settings)
            assert {frozenset(p) for p in parts} == _components_by_asking_the_index(rest, dd.index, dd.settings)
            assert sorted(a for p in parts for a in p) == sorted(rest)
            assert [len(p) for p in parts] == sorted((len(p) for p in parts), reverse=True)  # largest first
            split += len(parts) > 1
    assert split  # some of those member sets fall apart


def test_members_sharing_only_their_last_band_are_candidates_and_members_sharing_none_are_not():
    """Three copies of one text: LSH, not the text, decides which pairs are verified."""
    from dedup.index import MemoryIndex
    from dedup.stories import components

    dd = Deduper()
    base = dd.prepare(seeds()[0])
    mh = base.signature.minhash
    last = mh.copy() + 1
    last[-1] = mh[-1]  # rows = 1: the last band is the last value
    none = mh.copy() + 2
    idx = MemoryIndex(dd.settings)
    for aid, m in (("a", mh), ("b", last), ("c", none)):
        idx.put(dataclasses.replace(base, id=aid, signature=dataclasses.replace(base.signature, minhash=m)))
    assert components(["a", "b", "c"], idx, dd.settings) == [["a", "b"], ["c"]]


@settings(max_examples=8, deadline=None)
@given(st.randoms(use_true_random=False))
def test_arrival_order_does_not_change_the_stories(rnd: random.Random):
    arts = seeds() + meter_articles()
    base = Deduper()
    for a in arts:
        base.add(a)
    shuffled = list(arts)
    rnd.shuffle(shuffled)
    other = Deduper()
    for a in shuffled:
        other.add(a)
    ids = [a.id for a in arts]
    assert partition(base, ids) == partition(other, ids)
