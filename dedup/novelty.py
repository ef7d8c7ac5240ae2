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


def rank_story(story_id: str, entries: list[Entry], settings: Settings, counts: dict[int, int] | None = None) -> Story:
    """Rank the variants of one story by the unique information they add.

    ``counts`` maps sentence hashes to how many indexed articles contain them
    (from the index); a sentence more common than the story is large is
    boilerplate shared with other stories.
    """
    entries = sorted(entries, key=lambda e: e.id)
    size = len(entries)
    counts = counts or {}
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

    owners = np.array([i for i, v in enumerate(variants) for _ in v.sentences], dtype=int)
    all_sents = [s for v in variants for s in v.sentences]
    all_shown = [s for v in variants for s in v.shown]
    unique: list[list[int]] = [[] for _ in variants]
    info = np.zeros(len(variants))
    coverage = np.zeros(len(variants))
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
            total_mass = float(idf[list(set().union(*variant_terms))].sum()) if any(variant_terms) else 0.0
            for i in range(len(variants)):
                mine = owners == i
                others = ~mine
                if total_mass:
                    coverage[i] = float(idf[list(variant_terms[i])].sum()) / total_mass
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
    most_complete = max(range(len(variants)), key=lambda i: (coverage[i], -len(variants[i].entry.id))) if variants else -1
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
    headline_variant = variants[most_complete].entry if variants else None
    headline = ""
    if headline_variant is not None:
        headline = headline_variant.title or (variants[most_complete].shown[:1] or [""])[0]
    return Story(
        id=story_id,
        articles=ranked,
        headline=headline,
        sources=sorted({e.source for e in entries if e.source}),
        first_published=dates[0] if dates else "",
        last_published=dates[-1] if dates else "",
    )
