"""Novelty ranking: what each variant of a story says that no other variant does.

Within one story, every variant is split into sentences and a scikit-learn
TF-IDF model is fitted on the story's sentences, so words that every
variant repeats weigh little and the words of an addition weigh much.  A
sentence is *unique* to its variant when no sentence of another variant
reaches ``same_sentence`` cosine with it.  A variant's *unique information*
is the IDF mass of the words its unique sentences bring that no other
variant uses; variants are ranked by it.  The *most complete* variant is
the one that covers most of the story's vocabulary.

Boilerplate never counts: lines shaped like notices were removed by
normalization, and a line found in more indexed articles than the story has
variants must also occur outside the story (a sign-off, a promo line, a
recurring caption), so its sentences are skipped too.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer

from .records import Entry, RankedVariant, Story
from .settings import Settings
from .text import content_words, display_sentences


@dataclass
class _Variant:
    entry: Entry
    sentences: list[str]  # normalized, for matching
    shown: list[str]  # as they appear in the article


def _select(entries: list[Entry], settings: Settings, counts: dict[int, int]) -> list[_Variant]:
    """Each variant's countable sentences: long enough, and not boilerplate shared with other stories.

    Ranking and the cheap outline both start here, so they see the same sentences.
    """
    size = len(entries)
    variants: list[_Variant] = []
    for e in entries:
        sents, shown = [], []
        for display, s, line in display_sentences(e.text, e.title):
            if len(content_words(s)) < settings.min_sentence_words:
                continue
            if counts.get(line, 0) > size:
                continue
            sents.append(s)
            shown.append(display)
        variants.append(_Variant(e, sents, shown))
    return variants


def _coverage(variants: list[_Variant]) -> list[float]:
    """Share of the story's IDF mass (over its sentences) each variant's vocabulary covers.

    The IDF is scikit-learn's smoothed one (``ln((1+n)/(1+df)) + 1``) over
    the same ``content_words`` tokens the TF-IDF model uses, computed here
    without fitting a model so the story list can name the most complete
    variant for a fraction of the cost of ranking.  Sums use ``math.fsum``
    so equal vocabularies get exactly equal coverage whatever the set order.
    """
    df: dict[str, int] = {}
    n = 0
    terms: list[set[str]] = []
    for v in variants:
        mine: set[str] = set()
        for s in v.sentences:
            n += 1
            words = set(content_words(s))
            mine |= words
            for w in words:
                df[w] = df.get(w, 0) + 1
        terms.append(mine)
    if not df:
        return [0.0] * len(variants)
    idf = {w: math.log((1 + n) / (1 + c)) + 1.0 for w, c in df.items()}
    total = math.fsum(idf.values())
    return [math.fsum(idf[w] for w in t) / total for t in terms]


def _most_complete(variants: list[_Variant], coverage: list[float]) -> int:
    """Index of the variant covering most of the story (ties: shortest id, then first by id)."""
    if not variants:
        return -1
    return max(range(len(variants)), key=lambda i: (coverage[i], -len(variants[i].entry.id)))


def _headline(variants: list[_Variant], best: int) -> str:
    if best < 0:
        return ""
    v = variants[best]
    return v.entry.title or (v.shown[:1] or [""])[0]


@dataclass
class Outline:
    """What the story list shows, computed without ranking (no TF-IDF model, no similarity matrix)."""

    id: str
    headline: str
    most_complete: str
    size: int
    sources: list[str]
    first_published: str
    last_published: str


def outline_story(story_id: str, entries: list[Entry], settings: Settings,
                  counts: dict[int, int] | None = None) -> Outline:
    """Headline, most complete variant, size, sources and time span of a story.

    Gives the same ``headline`` and ``most_complete`` as :func:`rank_story`
    (same sentences, same coverage) but skips the sentence-similarity and
    unique-information work, which is what the list page does not show.
    """
    entries = sorted(entries, key=lambda e: e.id)
    variants = _select(entries, settings, counts or {})
    best = _most_complete(variants, _coverage(variants))
    dates = sorted(e.published for e in entries if e.published)
    return Outline(
        id=story_id,
        headline=_headline(variants, best),
        most_complete=variants[best].entry.id if best >= 0 else "",
        size=len(entries),
        sources=sorted({e.source for e in entries if e.source}),
        first_published=dates[0] if dates else "",
        last_published=dates[-1] if dates else "",
    )


def rank_story(story_id: str, entries: list[Entry], settings: Settings, counts: dict[int, int] | None = None) -> Story:
    """Rank the variants of one story by the unique information they add.

    ``counts`` maps sentence hashes to how many indexed articles contain them
    (from the index); a sentence more common than the story is large is
    boilerplate shared with other stories.
    """
    entries = sorted(entries, key=lambda e: e.id)
    variants = _select(entries, settings, counts or {})

    owners = np.array([i for i, v in enumerate(variants) for _ in v.sentences], dtype=int)
    all_sents = [s for v in variants for s in v.sentences]
    all_shown = [s for v in variants for s in v.shown]
    unique: list[list[int]] = [[] for _ in variants]
    info = np.zeros(len(variants))
    coverage = _coverage(variants)
    if all_sents:
        vec = TfidfVectorizer(
            tokenizer=content_words, lowercase=False, token_pattern=None, sublinear_tf=True
        )
        try:
            X = vec.fit_transform(all_sents)
        except ValueError:  # no vocabulary at all
            X = None
        if X is not None:
            sim = (X @ X.T).toarray()
            idf = vec.idf_
            present = (X > 0).astype(np.int8).tocsc()
            variant_terms = [set() for _ in variants]
            rows, cols = present.nonzero()
            for r, c in zip(rows, cols):
                variant_terms[owners[r]].add(c)
            for i in range(len(variants)):
                mine = owners == i
                others = ~mine
                if len(variants) == 1:
                    unique[i] = list(np.flatnonzero(mine))
                elif others.any():
                    best_other = sim[np.ix_(mine, others)].max(axis=1)
                    unique[i] = [int(j) for j, b in zip(np.flatnonzero(mine), best_other) if b < settings.same_sentence]
                other_terms = set().union(*(t for k, t in enumerate(variant_terms) if k != i))
                new_terms: set[int] = set()
                for j in unique[i]:
                    new_terms.update(X[j].indices)
                new_terms -= other_terms
                info[i] = float(idf[list(new_terms)].sum()) if new_terms else 0.0

    order = sorted(range(len(variants)), key=lambda i: (-info[i], -coverage[i], variants[i].entry.id))
    most_complete = _most_complete(variants, coverage)
    ranked = []
    for rank, i in enumerate(order, start=1):
        v = variants[i]
        ranked.append(
            RankedVariant(
                id=v.entry.id,
                rank=rank,
                title=v.entry.title or (v.shown[0] if v.shown else ""),
                source=v.entry.source,
                published=v.entry.published,
                unique_sentences=[all_shown[j] for j in unique[i]],
                unique_information=round(float(info[i]), 3),
                coverage=round(float(coverage[i]), 3),
                most_complete=(i == most_complete),
            )
        )
    dates = sorted(e.published for e in entries if e.published)
    headline = _headline(variants, most_complete)
    return Story(
        id=story_id,
        articles=ranked,
        headline=headline,
        sources=sorted({e.source for e in entries if e.source}),
        first_published=dates[0] if dates else "",
        last_published=dates[-1] if dates else "",
    )
