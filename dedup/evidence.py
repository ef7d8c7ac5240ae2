"""Pair evidence for the two levels: text reuse blind to outlet templates, and event links.

A *story* groups rewrites: two articles share text.  An *event* groups the
stories that report one news event, written independently: they share what
the event is about -- its names, places and figures -- but no text.  Every
rule here is a pure, symmetric function of the two articles, so the links,
and the connected components built from them, do not depend on arrival order.

**Templates.**  Text two articles of one outlet share only as its template
(:mod:`dedup.templates`) is not reuse, at either level: a story link counts
reuse without it, and an event link reads names outside it.

**Event links.**  Two articles published within the window are one event when
their word vectors are close (``event_min_cosine``, below which independent
reports of one event and unrelated reports of one beat -- two court cases,
two pop stars -- overlap) *and* they share specific names or figures: the
summed IDF of the words both hold and one of them writes as a name
(capitalized mid-sentence) or that hold a digit must reach ``event_min_names``.  Topic vocabulary shared by
a whole beat ("jury", "sentenced") is never written as a name, so it raises
the cosine but not the name evidence; the names are what keep two stories of
one beat from chaining into one event.

What the rules need beyond :class:`~dedup.records.Signature` is computed from
the normalized text by :func:`text_features`: the content words in text order
(for the positions of the shared trigrams), their IDF, and which of them are
written as names.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
import re
from functools import cached_property, lru_cache

import numpy as np

from .clustering import within_window
from .records import Signature
from .settings import Settings
from .signature import HASH_MASK, idf, pair_cosines, pair_reuses, term_hash, trigrams_of
from .templates import template_blind
from .text import NON_CONTENT, headline_line, split_sentences, tokens


@dataclass(frozen=True)
class TextFeatures:
    """What the pair rules read of one article beyond its signature, all in text order.

    ``words`` are the 24-bit term ids of the content words (as in
    ``Signature.term_ids``), ``weights`` their IDF, ``names`` whether each
    was written as a name or holds a digit, ``shingles`` the hash of the
    trigram starting at each word (as in ``Signature.shingles``; an article
    of fewer than three content words has its words instead).
    """

    words: np.ndarray  # uint32
    weights: np.ndarray  # float64
    names: np.ndarray  # bool
    shingles: np.ndarray  # uint32
    lead: int = 0  # words of the headline line (dedup.text.headline_line), 0 without one

    @cached_property
    def distinct(self) -> np.ndarray:
        """The distinct shingles, sorted."""
        return np.unique(self.shingles)


@lru_cache(maxsize=1 << 16)
def _term(token: str) -> tuple[int, float] | None:
    """(CRC32, IDF) of a lower-case token, None for a stop word or a single character."""
    if token in NON_CONTENT:
        return None
    return term_hash(token), idf(token)


# dedup.text's token pattern with both cases: on ASCII text, its matches lower-cased are the
# tokens of the lower-cased text, and each keeps the case it was written in.
_CASED_TOKEN = re.compile(r"[A-Za-z0-9$]+(?:[.,][0-9]+)*(?:'[A-Za-z]+)?")
_DIGIT = re.compile(r"[0-9]")
_MASK = int(HASH_MASK)


def _word_tokens(word: str) -> list[str]:
    if word.isascii():
        return [t.lower() for t in _CASED_TOKEN.findall(word)]
    return tokens(word)


@lru_cache(maxsize=1 << 18)
def _word(word: str) -> tuple[tuple[tuple[int, float], ...], bool, bool]:
    """What :func:`text_features` reads of one whitespace-delimited word, cached (words repeat):
    its content terms' (CRC32, IDF), whether it holds a digit, whether it starts with a capital."""
    terms = tuple(term for term in map(_term, _word_tokens(word)) if term is not None)
    return terms, bool(_DIGIT.search(word)), word.lstrip("\"'([{")[:1].isupper()


def text_features(clean: str) -> TextFeatures:
    """The :class:`TextFeatures` of a normalized text (:func:`dedup.text.normalize`).

    A word is a name or figure when it holds a digit, or is capitalized where capitals are not the
    sentence's own form: not its first word, and not in a line written in title case or capitals.
    """
    ids: list[int] = []
    weights: list[float] = []
    names: list[bool] = []
    lead = 0
    for n, line in enumerate(clean.split("\n")):
        if n == 1 and headline_line(clean):
            lead = len(ids)
        for sentence in split_sentences(line):
            words = [_word(w) for w in sentence.split()]
            # In a headline written in title case or capitals, capitals say nothing about names.
            headline = sum(upper for _, _, upper in words) * 2 > len(words)
            for k, (terms, digit, upper) in enumerate(words):
                named = digit or (k > 0 and not headline and upper)
                for crc, weight in terms:
                    ids.append(crc)
                    weights.append(weight)
                    names.append(named)
    crc = np.array(ids, dtype=np.uint32)
    shingles = trigrams_of(crc)
    return TextFeatures(
        words=crc & HASH_MASK,
        weights=np.array(weights, dtype=np.float64),
        names=np.array(names, dtype=bool),
        shingles=shingles,
        lead=lead,
    )


# A word that may be a name or figure: after its opening marks it starts with anything but a lower-case
# ASCII letter, or it holds a digit.  No other word is one, so :func:`named_terms` never looks at them.
_MAYBE_NAMED = re.compile(r"(?<!\S)(?:[\"'(\[{]*[^\sa-z\"'(\[{]|[^\s0-9]*[0-9])\S*")


def named_terms(clean: str) -> dict[int, float]:
    """The content words :func:`text_features` marks as names or figures, as {24-bit term id: IDF}.

    The same words as ``text_features(clean)``'s ``names``, without reading every word: only those
    :data:`_MAYBE_NAMED` finds are looked up, and a sentence's word count is what the headline test
    needs of the others.  Proposing event candidates needs only these.
    """
    out: dict[int, float] = {}
    for line in clean.split("\n"):
        for sentence in split_sentences(line):
            found = [(m.start() == 0, _word(m.group())) for m in _MAYBE_NAMED.finditer(sentence)]
            if not found:
                continue
            headline = sum(upper for _, (_, _, upper) in found) * 2 > len(sentence.split())
            for first, (terms, digit, upper) in found:
                if digit or (upper and not first and not headline):
                    for crc, weight in terms:
                        out[crc & _MASK] = weight
    return out


@dataclass(frozen=True)
class PairEvidence:
    """What two articles share, with outlet templates left out.

    ``cosine`` is the signatures' cosine, or, when a template was found, the
    cosine of what is left of the two texts without it; ``reuse`` the share of
    the shorter article's trigrams the other has, template trigrams not
    counted; ``names`` the summed IDF of the distinct words both hold,
    outside templates, that one of them writes as a name or figure;
    ``template`` how many shared trigrams were set aside as template.
    """

    cosine: float
    reuse: float
    names: float
    template: int


def pair_evidence(a: Signature, b: Signature, fa: TextFeatures, fb: TextFeatures,
                  settings: Settings) -> PairEvidence:
    """The :class:`PairEvidence` of two articles (their signatures and :func:`text_features`)."""
    return _evidence(a, b, fa, fb, pair_cosines([a], [b])[0], pair_reuses([a], [b])[0], settings, True)


def _evidence(a: Signature, b: Signature, fa: TextFeatures, fb: TextFeatures, cos: float, reuse: float,
              settings: Settings, names: bool) -> PairEvidence:
    """:func:`pair_evidence` from the signatures' cosine and reuse; ``names`` False skips the name sum."""
    blind = template_blind(fa, fb, a.shingles, b.shingles, cos, reuse, settings.template_gap, settings.min_cosine,
                           settings.min_reuse)
    return PairEvidence(blind.cosine, blind.reuse,
                        _shared_names(fa, blind.keep_a, fb, blind.keep_b) if names else 0.0, blind.template)


def _shared_names(a: TextFeatures, keep_a: np.ndarray, b: TextFeatures, keep_b: np.ndarray) -> float:
    """Summed IDF of the distinct words both texts hold (kept words only) that at least one of them
    writes as a name or figure: a headline in title case, or a title-only item, still shares the
    names the other text writes mid-sentence."""
    idf_of = dict(zip(a.words[keep_a].tolist(), a.weights[keep_a].tolist()))
    idf_of.update(zip(b.words[keep_b].tolist(), b.weights[keep_b].tolist()))
    words_a, words_b = set(a.words[keep_a].tolist()), set(b.words[keep_b].tolist())
    named = set(a.words[keep_a & a.names].tolist()) | set(b.words[keep_b & b.names].tolist())
    return float(sum(idf_of[i] for i in sorted(words_a & words_b & named)))


def links(a: Sequence[Signature], b: Sequence[Signature], fa: Sequence[TextFeatures],
          fb: Sequence[TextFeatures], settings: Settings) -> list[tuple[bool, bool]]:
    """(story link, event link) of every pair ``(a[k], b[k])``; an event link holds for every story link.

    Story: within the window, ``cosine >= min_cosine`` and template-blind
    ``reuse >= min_reuse``.  Event: a story link, or within the window,
    ``cosine >= event_min_cosine`` and ``names >= event_min_names``.
    Cosine and reuse are computed for the whole batch at once, as
    :func:`dedup.clustering.verify_pairs` does; the text features are read only
    for pairs whose cosine reaches a threshold (setting a template aside
    never raises it).  A pair's verdict does not depend on its batch.
    """
    out = [(False, False)] * len(a)
    near = [k for k, (x, y) in enumerate(zip(a, b)) if within_window(x.day, y.day, settings.window_days)]
    if not near:
        return out
    floor = min(settings.min_cosine, settings.event_min_cosine)
    close = [(k, c) for k, c in zip(near, pair_cosines([a[k] for k in near], [b[k] for k in near])) if c >= floor]
    if not close:
        return out
    reuse = pair_reuses([a[k] for k, _ in close], [b[k] for k, _ in close])
    for (k, c), r in zip(close, reuse):
        e = _evidence(a[k], b[k], fa[k], fb[k], c, r, settings, False)
        story = e.cosine >= settings.min_cosine and e.reuse >= settings.min_reuse
        event = story
        if not story and e.cosine >= settings.event_min_cosine:
            e = _evidence(a[k], b[k], fa[k], fb[k], c, r, settings, True)
            event = e.names >= settings.event_min_names
        out[k] = (story, event)
    return out


def event_links(a: Sequence[Signature], b: Sequence[Signature], fa: Sequence[TextFeatures],
                fb: Sequence[TextFeatures], settings: Settings) -> list[bool]:
    """Whether each pair ``(a[k], b[k])`` is one event (see :func:`links`)."""
    return [event for _, event in links(a, b, fa, fb, settings)]


def story_links(a: Sequence[Signature], b: Sequence[Signature], fa: Sequence[TextFeatures],
                fb: Sequence[TextFeatures], settings: Settings) -> list[bool]:
    """Whether each pair ``(a[k], b[k])`` is one story, outlet templates not counted as reuse."""
    return [story for story, _ in links(a, b, fa, fb, settings)]


__all__ = ["TextFeatures", "PairEvidence", "text_features", "named_terms", "pair_evidence", "links", "event_links",
           "story_links"]
