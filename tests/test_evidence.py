"""Pair evidence: template-blind reuse and event links, pure and symmetric."""

import dataclasses

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from dedup.evidence import links, named_terms, pair_evidence, text_features
from dedup.readers import read_paths
from dedup.settings import Settings
from dedup.signature import pair_reuses, sign, sign_many
from dedup.stories import verify_pairs
from dedup.text import normalize

from .conftest import SEEDS

S = Settings()

# An outlet's tail template, glued by hand onto two unrelated reports below.
TAIL = ("This report first appeared on the Vendian service of the Hollowmere Agency on 2 March 2021 at 10:15. "
        "To read the whole text of the report, visit the agency's website and register for free access.")
TAIL_LATER = TAIL.replace("10:15", "18:40")
FLOOD = ("Floodwater forced the evacuation of Marrowby on Tuesday after the river Tessel burst its banks. "
         "Rescue crews in boats lifted forty residents from rooftops along Quarry Lane, and the district "
         "council opened its sports hall in Ardle as a shelter. Engineers warned that the old weir upstream "
         "could fail if the rain continued, and the railway between Marrowby and Penhold was closed.")
BUDGET = ("The finance minister of Osterland, Lidia Varkonyi, presented a budget that cuts fuel subsidies and "
          "raises the pension age to sixty-six. Opposition deputies in the Zamor assembly walked out of the "
          "chamber, and unions called a strike for next Monday. Economists at Corvane Bank said the deficit "
          "target of three percent looked out of reach without new taxes on banks and shipping.")
# A rewrite of FLOOD that keeps its lead sentence word for word and rewords the rest.
FLOOD_REWRITE = ("Floodwater forced the evacuation of Marrowby on Tuesday after the river Tessel burst its banks. "
                 "Forty people were taken off their roofs on Quarry Lane by crews in boats, while Ardle's sports "
                 "hall became a shelter. The weir above Marrowby might give way, engineers said, and trains to "
                 "Penhold stopped running.")
# Independent report of the FLOOD event: no shared wording, shared names.
FLOOD_OTHER = ("Residents of Marrowby spent the night on camp beds at a gym in Ardle as the Tessel kept rising. "
               "Volunteers with dinghies reached families stranded on Quarry Lane; a railway spokesman said the "
               "Penhold line would stay shut until the weir had been inspected.")


def features(text: str):
    clean = normalize(text)[0]
    return sign(clean, 100, S), text_features(clean)


def evidence(x: str, y: str, settings: Settings = S):
    (a, fa), (b, fb) = features(x), features(y)
    return pair_evidence(a, b, fa, fb, settings), links([a], [b], [fa], [fb], settings)[0]


def test_features_trigrams_are_the_signature_trigrams():
    for text in (FLOOD, BUDGET + "\n" + TAIL, "Two words", "Tessel"):
        sig, f = features(text)
        assert np.array_equal(np.unique(f.shingles), sig.shingles)
        assert len(f.words) == len(f.weights) == len(f.names)


def test_names_are_words_capitalized_mid_sentence_or_holding_figures():
    f = text_features(normalize("Rescuers reached Marrowby at 3am.\nFLOODS HIT MARROWBY VALLEY TOWNS")[0])
    clean_words = ["rescuers", "reached", "marrowby", "3am", "floods", "hit", "marrowby", "valley", "towns"]
    assert f.names.tolist() == [False, False, True, True, False, False, False, False, False]
    assert len(clean_words) == len(f.words)


def names_of(f) -> dict[int, float]:
    return {int(w): float(x) for w, x, named in zip(f.words, f.weights, f.names) if named}


def test_named_terms_are_the_names_text_features_marks():
    clean = normalize("Rescuers reached Marrowby at 3am.\nFLOODS HIT MARROWBY VALLEY TOWNS")[0]
    assert named_terms(clean) == names_of(text_features(clean)) != {}


# Words shaped to reach every branch of the names rule: opening marks, capitals (ASCII and not),
# figures inside lower-case words, marks alone, stop words and title-case runs.
_word_shapes = st.sampled_from(["Marrowby", "marrowby", "MARROWBY", "\"Tessel", "'(Ardle", "mid-2020", "3am", "(",
                                "\u201cQuote", "\u00c9cole", "\u00e9cole", "The", "the", "of", "U.S.", "No.", "10",
                                "\u2014Penhold", "iPhone", "x7", "Quarry", "Lane,", "said.", "\"Yes,\"", "A"])


@given(st.lists(st.lists(_word_shapes, min_size=1, max_size=12).map(" ".join), min_size=1, max_size=6))
def test_named_terms_equal_text_features_names_on_any_text(lines):
    clean = normalize("\n".join(lines))[0]
    assert named_terms(clean) == names_of(text_features(clean))


def test_a_template_tail_is_not_text_reuse_nor_an_event():
    x, y = FLOOD + "\n" + TAIL, BUDGET + "\n" + TAIL_LATER
    (a, _), (b, _) = features(x), features(y)
    assert pair_reuses([a], [b])[0] >= S.min_reuse  # on trigrams alone the tail looks like reuse
    linked, cos, reuse = verify_pairs([a], [b], S)[0]
    assert not linked and reuse < S.min_reuse  # the story level sets the template aside too
    e, (story, event) = evidence(x, y)
    assert e.template > 0 and e.reuse < S.min_reuse
    assert e.cosine < S.min_cosine
    assert not story and not event


def test_a_template_head_is_not_text_reuse():
    head = TAIL.replace("This report first appeared", "This page was first published")
    e, (story, event) = evidence(head + "\n" + FLOOD, head.replace("10:15", "07:05") + "\n" + BUDGET)
    assert e.template > 0 and not story and not event


def test_a_lead_kept_word_for_word_is_reuse_when_the_rest_reports_the_same_story():
    e, (story, event) = evidence(FLOOD, FLOOD_REWRITE)
    assert e.template == 0
    assert story and event


def test_a_text_that_is_the_head_of_the_other_is_its_content_not_a_template():
    snap = FLOOD.split(". ")[0] + "."
    e, (story, _) = evidence(snap, FLOOD)
    assert e.template == 0 and e.reuse == 1.0 and story


def test_independent_reports_of_one_event_are_one_event_not_one_story():
    e, (story, event) = evidence(FLOOD, FLOOD_OTHER)
    assert e.reuse < S.min_reuse and e.names >= S.event_min_names
    assert not story and event


def test_an_event_link_needs_shared_names():
    e, (_, event) = evidence(FLOOD, FLOOD_OTHER)
    assert event and e.cosine >= S.event_min_cosine
    stricter = dataclasses.replace(S, event_min_names=e.names + 0.01)
    assert evidence(FLOOD, FLOOD_OTHER, stricter)[1] == (False, False)


def test_nothing_links_outside_the_window():
    (a, fa), (b, fb) = features(FLOOD), features(FLOOD_REWRITE)
    b = dataclasses.replace(b, day=a.day + S.window_days + 1)
    assert links([a], [b], [fa], [fb], S) == [(False, False)]


def test_seeds_rewrites_are_a_story_and_the_two_february_wires_one_event():
    arts = sorted((a for a in read_paths([str(SEEDS)])), key=lambda a: a.id)
    cleans = [normalize(a.text, a.title)[0] for a in arts]
    sigs = sign_many(cleans, [None] * len(arts), S)
    feats = [text_features(c) for c in cleans]
    pairs = [(i, j) for i in range(len(arts)) for j in range(i + 1, len(arts))]
    verdicts = dict(zip(pairs, links([sigs[i] for i, _ in pairs], [sigs[j] for _, j in pairs],
                                     [feats[i] for i, _ in pairs], [feats[j] for _, j in pairs], S)))
    assert [p for p, (story, _) in verdicts.items() if story] == [(0, 1)]
    assert verdicts[(2, 3)] == (False, True)


_WORDS = ["river", "council", "weir", "shelter", "rescue", "budget", "pension", "strike", "deficit", "banks",
          "Marrowby", "Tessel", "Ardle", "Osterland", "Varkonyi", "Zamor", "2021", "forty", "Monday", "the", "of"]
_sentence = st.lists(st.sampled_from(_WORDS), min_size=3, max_size=12).map(lambda w: " ".join(w) + ".")
_text = st.lists(_sentence, min_size=1, max_size=8).map(" ".join)


@settings(max_examples=150, deadline=None)
@given(_text, _text, st.sampled_from(["", TAIL]), st.sampled_from(["", TAIL_LATER]), st.booleans())
def test_pair_evidence_and_links_are_symmetric(x, y, tail_x, tail_y, at_head):
    x = (tail_x + "\n" + x) if at_head else (x + "\n" + tail_x)
    y = (tail_y + "\n" + y) if at_head else (y + "\n" + tail_y)
    (a, fa), (b, fb) = features(x), features(y)
    forward, backward = pair_evidence(a, b, fa, fb, S), pair_evidence(b, a, fb, fa, S)
    assert forward.reuse == backward.reuse and forward.template == backward.template
    assert abs(forward.cosine - backward.cosine) < 1e-12 and abs(forward.names - backward.names) < 1e-9
    assert links([a], [b], [fa], [fb], S) == links([b], [a], [fb], [fa], S)


@settings(max_examples=100, deadline=None)
@given(_text, _text)
def test_every_story_link_is_an_event_link_and_without_templates_reuse_is_the_signatures(x, y):
    (a, fa), (b, fb) = features(x), features(y)
    e = pair_evidence(a, b, fa, fb, S)
    story, event = links([a], [b], [fa], [fb], S)[0]
    assert event or not story
    if not e.template:
        _, cos, _ = verify_pairs([a], [b], S)[0]
        assert e.cosine == cos
