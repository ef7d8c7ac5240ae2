"""The clustering decision: verification of a pair, and planning a run of arriving articles.

:func:`dedup.clustering.plan_run` is the one place where an article starts,
joins or merges a story; every index reads for it and writes what it plans.
"""

import dataclasses
import random

import numpy as np
from hypothesis import given, settings, strategies as st

from dedup import Deduper
from dedup.clustering import (Overlay, Seen, band_keys, plan_run, verify, verify_many, verify_pairs,
                              with_late_links)
from dedup.readers import read_paths
from dedup.records import Assignment, Entry, Signature
from dedup.settings import Settings
from dedup.signature import quantized_weights

from .conftest import SEEDS, meter_articles

SETTINGS = Settings()


def entry(aid: str, fill: int, terms=(1, 2, 3), day: int | None = None) -> Entry:
    """An article whose every band is ``fill``: articles with the same fill are candidates, and with
    the same terms one story (cosine 1, full reuse)."""
    sig = Signature(minhash=np.full(SETTINGS.num_perm, fill, dtype=np.uint32),
                    term_ids=np.array(terms, dtype=np.uint32), term_weights=quantized_weights(np.full(len(terms), 255)),
                    shingles=np.array(terms, dtype=np.uint32), day=day)
    return Entry(aid, "", f"text of {aid}", "", "", "", sig, [])


def nothing_taken(_: str) -> bool:
    return False


def test_an_article_without_linked_candidates_starts_a_story_named_after_it():
    plan = plan_run([entry("a", 1)], [Seen()], SETTINGS, nothing_taken)
    assert [d.assignment for d in plan.decisions] == [Assignment("a", "a", "new")]
    # a candidate sharing a band but no words is verified and not linked
    other = entry("b", 1, terms=(7, 8, 9))
    plan = plan_run([entry("a", 1)], [Seen(sigs={"b": other.signature}, stories={"b": "b"})], SETTINGS, nothing_taken)
    assert plan.decisions[0].assignment.action == "new" and plan.decisions[0].assignment.links == []


def test_a_run_sees_its_own_earlier_articles_and_merges_the_stories_an_article_bridges():
    x, y = entry("x", 1), entry("y", 2)
    # the bridge shares x's bands in its first half and y's in its second
    bridge = entry("z", 1)
    bridge.signature.minhash[SETTINGS.num_perm // 2:] = 2
    plan = plan_run([x, y, bridge], [Seen(), Seen(), Seen()], SETTINGS, nothing_taken)
    got = [(d.assignment.story, d.assignment.action, d.assignment.merged) for d in plan.decisions]
    assert got == [("x", "new", []), ("y", "new", []), ("x", "merged", ["y"])]
    assert plan.resolve("y") == "x"


def test_a_run_stops_at_a_stored_or_repeated_id():
    a, b = entry("a", 1), entry("b", 2)
    assert plan_run([a, b, a], [Seen(), Seen(), Seen()], SETTINGS, nothing_taken).stop == 2
    assert plan_run([a, b], [Seen(), Seen(stored=True)], SETTINGS, nothing_taken).stop == 1


def test_a_story_already_named_after_the_article_gives_the_new_one_a_suffix():
    taken = {"a", "a~2"}
    plan = plan_run([entry("a", 1)], [Seen(own=["old"])], SETTINGS, taken.__contains__)
    assert plan.decisions[0].assignment.story == "a~3"


def random_run(rnd: random.Random, n: int) -> list[Entry]:
    """Articles over a few fills and word sets, some undated: links, merges and unlinked candidates."""
    out = []
    for k in range(n):
        e = entry(f"a{k:03d}", rnd.randrange(4), terms=rnd.choice([(1, 2, 3), (1, 2, 4), (5, 6, 7)]),
                  day=rnd.choice([None, 100, 101, 140]))
        if rnd.random() < 0.3:  # a second fill in half the bands: a potential bridge
            e.signature.minhash[SETTINGS.num_perm // 2:] = rnd.randrange(4)
        out.append(e)
    return out


@settings(max_examples=40, deadline=None)
@given(st.randoms(use_true_random=False), st.integers(2, 24), st.integers(1, 8))
def test_planning_in_pieces_on_the_overlay_gives_the_plan_of_the_whole_run(rnd, n, piece):
    """What a pipelined index does (read run k+1 before run k is written, plan it on run k's overlay)
    and what an index planning one article at a time does give the same decisions as one run."""
    run = random_run(rnd, n)
    whole = [d.assignment for d in plan_run(run, [Seen() for _ in run], SETTINGS, nothing_taken).decisions]
    pieces: list[Assignment] = []
    earlier = Overlay()
    written = Overlay()  # everything planned so far, as a store would hold it
    for start in range(0, n, piece):
        part = run[start:start + piece]
        # the store's view: articles written before the previous piece, with their stories now
        sigs = {c: written.sig[c] for c in written.sig if c not in earlier.sig}
        seen = []
        for e in part:
            cands = {c: s for c, s in sigs.items() if set(band_keys([s], SETTINGS)[0]) & set(band_keys([e.signature], SETTINGS)[0])}
            seen.append(Seen(sigs=cands, stories={c: resolve(written, written.story[c]) for c in cands}))
        plan = plan_run(part, seen, SETTINGS, nothing_taken, earlier, overlay=True)
        pieces += [d.assignment for d in plan.decisions]
        for d in plan.decisions:
            written.sig[part[d.at].id] = part[d.at].signature
            written.story[part[d.at].id] = d.assignment.story
        written.renamed.update(plan.overlay.renamed)
        earlier = plan.overlay
    assert pieces == whole


def resolve(overlay: Overlay, story: str) -> str:
    while story in overlay.renamed:
        story = overlay.renamed[story]
    return story


def test_late_links_fold_stories_into_the_first_one():
    a = Assignment("x", "x", "new")
    assert with_late_links(a, [], [("y", 1.0, 1.0)]) == Assignment("x", "x", "new", links=[("y", 1.0, 1.0)])
    joined = with_late_links(a, ["y", "x"], [("y", 1.0, 1.0)])
    assert (joined.story, joined.action, joined.merged) == ("y", "joined", [])
    merged = with_late_links(Assignment("x", "s", "joined"), ["t", "u"], [])
    assert (merged.story, merged.action, merged.merged) == ("t", "merged", ["s", "u"])


# -- verification ----------------------------------------------------------------------------------
def seed_signatures() -> list[Signature]:
    dd = Deduper()
    return [dataclasses.replace(dd.prepare(a).signature, day=100) for a in read_paths([str(SEEDS)])]


def test_verifying_all_candidates_at_once_gives_each_pair_its_own_verdict():
    sigs = seed_signatures()
    far = dataclasses.replace(sigs[1], day=130)
    others = [*sigs, far]
    batch = verify_many(sigs[0], others, SETTINGS)
    assert batch == [verify(sigs[0], o, SETTINGS) for o in others]
    mixed = verify_pairs([sigs[0], sigs[1]] * len(others), [x for o in others for x in (o, sigs[2])], SETTINGS)
    assert mixed[0::2] == batch
    assert batch[1][0] and not batch[-1][0]  # the rewrite links; the same text a month later does not


@settings(max_examples=20, deadline=None)
@given(st.randoms(use_true_random=False))
def test_a_pairs_verdict_does_not_depend_on_the_batch_it_is_verified_in(rnd: random.Random):
    """Indexes verify all candidate pairs of a run at once; each pair gets exactly the verdict, cosine and
    reuse it gets alone, in either order."""
    dd = Deduper()
    sigs = [dd.prepare(a).signature for a in list(read_paths([str(SEEDS)])) + meter_articles()]
    pairs = [(rnd.choice(sigs), rnd.choice(sigs)) for _ in range(rnd.randint(1, 40))]
    batch = verify_pairs([a for a, _ in pairs], [b for _, b in pairs], SETTINGS)
    assert batch == [verify(a, b, SETTINGS) for a, b in pairs]
    assert batch == verify_pairs([b for _, b in pairs], [a for a, _ in pairs], SETTINGS)
