"""Novelty ranking: what each variant of a story says that no other variant does.

Within one story, every variant is split into sentences and a scikit-learn
TF-IDF model is fitted on the story's sentences, so words that every
variant repeats weigh little and the words of an addition weigh much.  A
sentence is *unique* to its variant when no sentence of another variant
reaches ``same_sentence`` cosine with it (each sentence's nearest neighbour
is found with sparse products, a block at a time, so memory and time grow
with the story, not its square).  A variant's *unique information* counts
its unique sentences, each by how far it is from the nearest sentence of
another variant; variants are ranked by it.  The *most complete* variant is
the one that covers most of the story's vocabulary.

Boilerplate never counts: lines shaped like notices were removed by
normalization, and a line found in more indexed articles than the story has
variants must also occur outside the story (a sign-off, a promo line, a
recurring caption), so its sentences are skipped too.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from sklearn.feature_extraction.text import TfidfVectorizer

from .records import Entry, RankedVariant, Story
from .settings import Settings
from .text import BYLINE, HEADLINE_WORDS, content_words, display_sentences


@dataclass
class _Variant:
    entry: Entry
    sentences: list[str]  # normalized, for matching
    shown: list[str]  # as they appear in the article
    reportable: list[bool]  # a statement, which may be reported as unique (see _is_statement)


_LOWER_WORD = re.compile(r"(?:^|\s)[\"'`(\u201c\u2018]*[a-z]")


def _is_statement(sentence: str, min_words: int) -> bool:
    """Whether a sentence can be reported as something a variant says.

    It needs ``min_words`` content words holding a letter (figures alone,
    "24 January 2020", state nothing) and a word in lower case: a line of
    capitalised words alone is a heading, a label or a caption ("World
    News", "Jens Stoltenberg", "SALESMAN GETS LIFE"), not reporting.
    """
    words = sum(1 for w in content_words(sentence) if not w.isdigit() and any(c.isalpha() for c in w))
    return words >= min_words and _LOWER_WORD.search(sentence) is not None


def _select(entries: list[Entry], settings: Settings, counts: dict[int, int]) -> list[_Variant]:
    """Each variant's sentences, boilerplate shared with other stories left out.

    Ranking and the cheap outline both start here, so they see the same
    sentences.  Short sentences stay: one can still say what a sentence of
    another variant says ("The trial was adjourned."), so it is matched
    against; it is only never *reported* as unique when it has fewer than
    ``min_sentence_words`` content words.
    """
    size = len(entries)
    variants: list[_Variant] = []
    for e in entries:
        sents, shown, reportable = [], [], []
        for display, s, line in display_sentences(e.text, e.title):
            if counts.get(line, 0) > size:
                continue
            sents.append(s)
            shown.append(display)
            reportable.append(_is_statement(s, settings.min_sentence_words))
        variants.append(_Variant(e, sents, shown, reportable))
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


# Headlines are set in a few lines of large type: wire titles run to 3-10 words, a lede to 25-40.
_HEAD_CHARS = 4000  # room for a long advisory paragraph, a headline and a byline
# PA's editorial notes open a take: "(with pix)", "(Advisory: note references to ...)", "(corrected ...)",
# sometimes as a paragraph of their own; and rules of dashes set off a headline.
_ADVISORY = re.compile(r"^\((?:[^()]|\([^()]*\))*\)[.:]?\s*")
_RULE = re.compile(r"^[-_=*~]{3,}\s*|\s*[-_=*~]{3,}$")
# A wire headline set in capitals ("SALESMAN GETS LIFE FOR KILLING DOG BREEDER"), which can run straight
# into the byline and the lede when a feed joins the lines: words without a lower-case letter, at least
# four of them (newspapers capitalise only the first word or two of a lede: "NEIL HAMILTON dropped ...").
_CAPS_HEADLINE = re.compile(r"^(?:[^\sa-z]*[A-Z0-9][^\sa-z]*\s+){3,}[^\sa-z]*[A-Z0-9][^\sa-z]*(?=\s|$)")


def _clean_line(line: str) -> str:
    return _RULE.sub("", _ADVISORY.sub("", " ".join(line.split())))


def _title(entry: Entry) -> str:
    return _clean_line(entry.title) or " ".join(entry.title.split())


def _first_line_headline(entry: Entry) -> str:
    """A headline the text opens with, judged by its shape, or "".

    The first line (past editorial notes and a byline) is a headline when it
    is short, does not end a sentence or open a list (no final "." or ":"),
    and the next line does not carry on in lower case (a sentence wrapped at
    the line's end).  A longer line can still open with a capitals headline.
    """
    head = entry.text[:_HEAD_CHARS].split("\n")
    if len(entry.text) > _HEAD_CHARS:
        head.pop()  # the cut runs through it
    lines = [line for line in map(_clean_line, head) if line and not BYLINE.match(line)]
    if not lines:
        return ""
    first = lines[0]
    after = lines[1] if len(lines) > 1 else ""
    if (len(first.split()) <= HEADLINE_WORDS and not first.rstrip("\"'\u201d\u2019)").endswith((".", ":"))
            and not after[:1].islower()):
        return first
    caps = _CAPS_HEADLINE.match(first)
    return caps[0] if caps else ""


def _headline(variants: list[_Variant], coverage: list[float]) -> str:
    """The headline of the most complete variant that has one.

    Continuation pages and newspaper rewrites often carry none, and a
    sidebar's headline names its own angle, so the variants are tried from
    the most complete down: first for a title, which is a headline by
    declaration, then for a first line shaped like one.  With no headline
    anywhere, the most complete variant's first sentence stands in, cut to a
    headline's length.
    """
    if not variants:
        return ""
    order = sorted(range(len(variants)), key=lambda i: (-coverage[i], len(variants[i].entry.id), variants[i].entry.id))
    for find in (_title, _first_line_headline):
        for i in order:
            found = find(variants[i].entry)
            if found:
                return found
    words = _clean_line((variants[order[0]].shown[:1] or [""])[0]).split()
    return " ".join(words[:HEADLINE_WORDS]) + (" \u2026" if len(words) > HEADLINE_WORDS else "")


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
    coverage = _coverage(variants)
    best = _most_complete(variants, coverage)
    dates = sorted(e.published for e in entries if e.published)
    return Outline(
        id=story_id,
        headline=_headline(variants, coverage),
        most_complete=variants[best].entry.id if best >= 0 else "",
        size=len(entries),
        sources=sorted({e.source for e in entries if e.source}),
        first_published=dates[0] if dates else "",
        last_published=dates[-1] if dates else "",
    )


# Sentence pairs held at once while finding each sentence's nearest neighbour: bounds the memory of a
# block of the sparse similarity product (a few bytes per pair) whatever the story's size.
_PAIRS_PER_BLOCK = 4_000_000


def _nearest_other(X, bounds: list[tuple[int, int]]) -> np.ndarray:
    """Per sentence (row of ``X``, unit rows grouped by variant), its best cosine with another variant's.

    Each variant's rows are multiplied by the other variants' rows only, a
    block of rows at a time, and each block keeps only its row maxima: no
    sentence x sentence matrix is ever held, and a variant is never compared
    with itself, so one huge article beside a few small rewrites costs time
    and memory in proportion to its size, not its square.
    """
    n = X.shape[0]
    best = np.zeros(n)
    if n * n <= _PAIRS_PER_BLOCK:
        # A usual story fits one product; masking a variant's pairs with itself is then cheaper than
        # slicing the matrix per variant.
        sims = (X @ X.T).tocoo()
        owner = np.repeat(np.arange(len(bounds)), [end - start for start, end in bounds])
        other = owner[sims.row] != owner[sims.col]
        np.maximum.at(best, sims.row[other], sims.data[other])
        return best
    for start, end in bounds:
        if start == end or end - start == n:
            continue
        others = sp.vstack([X[:start], X[end:]], format="csr").T.tocsc()
        step = max(1, _PAIRS_PER_BLOCK // others.shape[1])
        for lo in range(start, end, step):
            hi = min(end, lo + step)
            block = (X[lo:hi] @ others).tocsr()
            if block.nnz:
                best[lo:hi] = block.max(axis=1).toarray().ravel()
    return best


def rank_story(story_id: str, entries: list[Entry], settings: Settings, counts: dict[int, int] | None = None) -> Story:
    """Rank the variants of one story by the unique information they add.

    ``counts`` maps sentence hashes to how many indexed articles contain them
    (from the index); a sentence more common than the story is large is
    boilerplate shared with other stories.
    """
    entries = sorted(entries, key=lambda e: e.id)
    variants = _select(entries, settings, counts or {})

    all_sents = [s for v in variants for s in v.sentences]
    all_shown = [s for v in variants for s in v.shown]
    reportable = np.array([r for v in variants for r in v.reportable], dtype=bool)
    bounds, start = [], 0
    for v in variants:
        bounds.append((start, start + len(v.sentences)))
        start += len(v.sentences)
    unique: list[list[int]] = [[] for _ in variants]
    info = np.zeros(len(variants))
    coverage = _coverage(variants)
    X = None
    if all_sents:
        vec = TfidfVectorizer(
            tokenizer=content_words, lowercase=False, token_pattern=None, sublinear_tf=True
        )
        try:
            X = vec.fit_transform(all_sents).tocsr()
        except ValueError:  # no vocabulary at all
            X = None
    if X is not None:
        best_other = _nearest_other(X, bounds)
        for i, (lo, hi) in enumerate(bounds):
            if len(variants) == 1:
                mine = np.arange(lo, hi)
            else:
                mine = lo + np.flatnonzero(best_other[lo:hi] < settings.same_sentence)
            unique[i] = [int(j) for j in mine if reportable[j]]
            # Each unique sentence counts by how far it is from anything another variant says: a count of
            # new statements, softened for those that half-repeat one.  Summing words instead would let
            # one long sentence outweigh several short new quotes.
            info[i] = float(np.sum(1.0 - best_other[unique[i]])) if unique[i] else 0.0

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
    headline = _headline(variants, coverage)
    return Story(
        id=story_id,
        articles=ranked,
        headline=headline,
        sources=sorted({e.source for e in entries if e.source}),
        first_published=dates[0] if dates else "",
        last_published=dates[-1] if dates else "",
    )


# Cosine at or above which two aligned sentences count as the same wording, not a rewording.
SAME_WORDING = 0.9


@dataclass
class AlignedRow:
    """One row of two variants side by side: ``kind`` is aligned, reworded, only-left or only-right."""

    kind: str
    left: str
    right: str
    similarity: float


def align_variants(entries: list[Entry], left: str, right: str, settings: Settings,
                   counts: dict[int, int] | None = None) -> tuple[list[AlignedRow], float]:
    """Align two variants of a story sentence by sentence, with the similarity the ranking uses.

    The TF-IDF model is fitted on the whole story's sentences exactly as in
    :func:`rank_story`, so a pair the ranking calls "says the same" (cosine
    at or above ``same_sentence``) is aligned here too.  Pairs are chosen in
    reading order (the best-scoring monotone alignment); a pair at or above
    :data:`SAME_WORDING` is *aligned*, a lower one *reworded*.  Returns the
    rows and the share of sentences that found a partner.
    """
    return align_with(entries, left, [right], settings, counts)[right]


def align_with(entries: list[Entry], left: str, rights: list[str], settings: Settings,
               counts: dict[int, int] | None = None) -> dict[str, tuple[list[AlignedRow], float]]:
    """:func:`align_variants` of ``left`` with each of ``rights``, the story's TF-IDF model fitted once."""
    entries = sorted(entries, key=lambda e: e.id)
    variants = _select(entries, settings, counts or {})
    by_id = {v.entry.id: v for v in variants}
    all_sents = [s for v in variants for s in v.sentences]
    vec = TfidfVectorizer(tokenizer=content_words, lowercase=False, token_pattern=None, sublinear_tf=True)
    a = by_id[left]
    try:
        vec.fit(all_sents)
        left_rows = vec.transform(a.sentences)
    except ValueError:  # no vocabulary at all
        left_rows = None
    out = {}
    for right in rights:
        b = by_id[right]
        if left_rows is None:
            sims = np.zeros((len(a.sentences), len(b.sentences)))
        else:
            sims = (left_rows @ vec.transform(b.sentences).T).toarray()
        out[right] = _align(a, b, sims, settings)
    return out


def _align(a: _Variant, b: _Variant, sims: np.ndarray, settings: Settings) -> tuple[list[AlignedRow], float]:
    """The best-scoring monotone alignment of the sentences of ``a`` and ``b`` given their similarities."""
    n, m = sims.shape
    # Best total similarity over monotone pairings that only pair sentences saying the same thing.
    score = np.zeros((n + 1, m + 1))
    for i in range(n - 1, -1, -1):
        for j in range(m - 1, -1, -1):
            best = max(score[i + 1, j], score[i, j + 1])
            if sims[i, j] >= settings.same_sentence:
                best = max(best, sims[i, j] + score[i + 1, j + 1])
            score[i, j] = best
    rows: list[AlignedRow] = []
    i = j = 0
    while i < n or j < m:
        if i < n and j < m and sims[i, j] >= settings.same_sentence and score[i, j] == sims[i, j] + score[i + 1, j + 1]:
            kind = "aligned" if sims[i, j] >= SAME_WORDING else "reworded"
            rows.append(AlignedRow(kind, a.shown[i], b.shown[j], round(float(sims[i, j]), 3)))
            i, j = i + 1, j + 1
        elif i < n and (j == m or score[i, j] == score[i + 1, j]):
            rows.append(AlignedRow("only-left", a.shown[i], "", 0.0))
            i += 1
        else:
            rows.append(AlignedRow("only-right", "", b.shown[j], 0.0))
            j += 1
    paired = sum(2 for r in rows if r.kind in ("aligned", "reworded"))
    return rows, round(paired / (n + m), 3) if n + m else 1.0
