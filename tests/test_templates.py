"""Outlet templates: text two articles share only as a block at the same edge of both is not reuse.

The story level decides it from the signature alone (its words in text order), so every index --
in process, Redis in either layout, records with or without their features -- splits the same pairs.
"""

import dataclasses
import datetime as dt
import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dedup.clustering import verify
from dedup.evidence import text_features
from dedup.records import Article
from dedup.service import Deduper
from dedup.settings import Settings
from dedup.signature import pair_cosines, pair_reuses, sign
from dedup.templates import edge_blocks, sequence_of, template_blind
from dedup.text import normalize

from .test_evidence import BUDGET, FLOOD, FLOOD_REWRITE, TAIL, TAIL_LATER

S = Settings()
DAY = dt.datetime(2021, 3, 2, tzinfo=dt.timezone.utc)
HEAD = TAIL.replace("This report first appeared", "This page was first published")
# A plea an outlet puts at the top of every article's body, under the article's own headline.
PLEA = ("Listen to this story. Your browser does not support the audio element. Independent journalism needs "
        "your support: become a Ledgerline member for the price of a coffee each month, join our readers "
        "community, sign up for the Morning Briefing newsletter and get every story in your inbox before breakfast.")
FLOOD_HEADLINE = "Marrowby evacuated as river Tessel bursts banks after week of heavy rain"
BUDGET_HEADLINE = "Osterland finance minister Lidia Varkonyi cuts fuel subsidies, raises pension age"
# Four reports of one outlet, each closing with its archive notice: two pairs of unrelated reports
# around one rewrite pair.
REPORTS = {
    "flood": FLOOD + "\n" + TAIL,
    "budget": BUDGET + "\n" + TAIL_LATER,
    "flood-rewrite": FLOOD_REWRITE + "\n" + TAIL.replace("10:15", "21:30"),
}


def signed(text: str):
    return sign(normalize(text)[0], 100, S)


def test_a_signature_gives_back_its_trigrams_in_text_order_and_a_weight_per_word():
    sig = signed(FLOOD + "\n" + TAIL)
    seq = sequence_of(sig)
    assert np.array_equal(np.unique(seq.shingles), sig.shingles)
    assert len(seq.words) == len(seq.weights) == len(sig.words)
    # the weights are the words' IDF up to one factor per article (which no cosine sees)
    idf = text_features(normalize(FLOOD + "\n" + TAIL)[0]).weights
    ratio = seq.weights / idf
    assert np.allclose(ratio, ratio[0], rtol=0.02)


def test_a_signature_made_by_hand_records_no_words_and_is_verified_as_before():
    a, b = signed(FLOOD + "\n" + TAIL), signed(BUDGET + "\n" + TAIL_LATER)
    assert not verify(a, b, S)[0]
    bare_a, bare_b = (dataclasses.replace(x, words=None) for x in (a, b))
    assert sequence_of(bare_a) is None
    assert verify(bare_a, bare_b, S)[0]  # on trigrams alone the shared tail is reuse


@pytest.mark.parametrize("glue", ["tail", "head"])
def test_unrelated_reports_sharing_an_outlet_template_are_not_linked(glue):
    x, y = ((FLOOD + "\n" + TAIL, BUDGET + "\n" + TAIL_LATER) if glue == "tail"
            else (HEAD + "\n" + FLOOD, HEAD.replace("10:15", "07:05") + "\n" + BUDGET))
    a, b = signed(x), signed(y)
    assert pair_reuses([a], [b])[0] >= S.min_reuse and pair_cosines([a], [b])[0] >= S.min_cosine
    linked, cos, reuse = verify(a, b, S)
    assert not linked and reuse < S.min_reuse and cos < S.min_cosine


def test_a_template_under_each_articles_own_headline_is_not_reuse():
    """Past a headline of more than template_gap words the plea is not at the text's head, but it is at
    the top of the body: the signature knows how many words the headline line holds."""
    a = signed(FLOOD_HEADLINE + "\n" + PLEA + "\n" + FLOOD)
    b = signed(BUDGET_HEADLINE + "\n" + PLEA + "\n" + BUDGET)
    assert a.lead == 9 and b.lead == 11 and min(a.lead, b.lead) > S.template_gap
    assert pair_reuses([a], [b])[0] >= S.min_reuse and pair_cosines([a], [b])[0] >= S.min_cosine
    assert not verify(a, b, S)[0]
    assert verify(dataclasses.replace(a, lead=0), dataclasses.replace(b, lead=0), S)[0]  # headline unknown
    rewrite = signed("Flood forces Marrowby families from homes\n" + PLEA + "\n" + FLOOD_REWRITE)
    assert verify(a, rewrite, S)[0]  # the rest still reports one story


def test_the_signature_and_the_text_features_agree_on_the_headline_line():
    for text in (FLOOD_HEADLINE + "\n" + PLEA + "\n" + FLOOD, FLOOD, "A lede that ends a sentence.\n" + FLOOD,
                 FLOOD_HEADLINE + "\nand a line carried on in lower case"):
        clean = normalize(text)[0]
        assert signed(text).lead == text_features(clean).lead
    assert signed(FLOOD).lead == 0 and signed("A lede that ends a sentence.\n" + FLOOD).lead == 0


def test_a_rewrite_keeping_the_lead_and_the_template_is_still_linked():
    """The remainders still report the same story: the shared head is the story's own lead."""
    a, b = signed(REPORTS["flood"]), signed(REPORTS["flood-rewrite"])
    assert verify(a, b, S)[0]
    assert verify(signed(FLOOD), signed(FLOOD_REWRITE), S)[0]


def test_a_short_text_that_is_the_others_head_is_its_content():
    snap = FLOOD.split(". ")[0] + "."
    sa, sb = sequence_of(signed(snap)), sequence_of(signed(FLOOD))
    assert len(edge_blocks(sa, sb, S.template_gap)[2]) == 0
    assert verify(signed(snap), signed(FLOOD), S)[0]


@settings(max_examples=30, deadline=None)
@given(st.sampled_from(list(itertools.permutations(REPORTS.values(), 2))))
def test_the_template_test_is_symmetric(pair):
    a, b = (sequence_of(signed(t)) for t in pair)
    sa, sb = np.unique(a.shingles), np.unique(b.shingles)
    forward = template_blind(a, b, sa, sb, 0.5, 0.5, S.template_gap, S.min_cosine, S.min_reuse)
    backward = template_blind(b, a, sb, sa, 0.5, 0.5, S.template_gap, S.min_cosine, S.min_reuse)
    assert (forward.cosine, forward.reuse, forward.template) == (backward.cosine, backward.reuse, backward.template)


def stories(dd: Deduper) -> set[frozenset[str]]:
    out = [a for a in dd.add_many(Article(id=k, text=v, published=DAY) for k, v in REPORTS.items())]
    assert all(not hasattr(o, "code") for o in out)
    groups: dict[str, set[str]] = {}
    for aid in REPORTS:
        groups.setdefault(dd.story_of(aid), set()).add(aid)
    return {frozenset(g) for g in groups.values()}


WANT = {frozenset({"flood", "flood-rewrite"}), frozenset({"budget"})}


def test_in_process_an_outlet_template_does_not_make_a_story():
    assert stories(Deduper(S)) == WANT


@pytest.mark.parametrize("layout,store_features", [("slot", False), ("slot", True), ("spread", False)])
def test_every_redis_layout_splits_the_same_pairs(redis_url, layout, store_features):
    settings = dataclasses.replace(S, redis_layout=layout, store_features=store_features)
    with Deduper(settings, url=redis_url, namespace=f"tpl-{layout}-{int(store_features)}") as dd:
        assert stories(dd) == WANT


@settings(max_examples=12, deadline=None)
@given(st.permutations(sorted(REPORTS)))
def test_arrival_order_does_not_change_what_a_template_splits(order):
    dd = Deduper(S)
    for aid in order:
        dd.add(Article(id=aid, text=REPORTS[aid], published=DAY))
    groups: dict[str, set[str]] = {}
    for aid in REPORTS:
        groups.setdefault(dd.story_of(aid), set()).add(aid)
    assert {frozenset(g) for g in groups.values()} == WANT
