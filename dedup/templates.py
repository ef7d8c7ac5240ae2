"""Outlet templates: text two articles share only as a block at the same edge of both.

Web outlets wrap every article in the same lines (an archive notice at the
tail, a subscription plea at the head).  Two unrelated articles of one outlet
then share a run of trigrams that carries none of either story.  A run of
shared trigrams is a *template* when it sits at the same edge (head or tail)
of both texts, is the smaller part of each, and what remains of the two texts
outside it is not about the same thing (cosine of the remainders below
``min_cosine``).  A rewrite that keeps its source's lead verbatim also shares
a head run, but its remainder still reports the same story, so the run counts
as reuse.

Both levels use it: :func:`dedup.clustering.verify_pairs` decides stories
with it from what a :class:`~dedup.records.Signature` holds, and
:mod:`dedup.evidence` decides events with it from the text.  Every function
here is pure and symmetric in its two articles.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .records import Signature
from .signature import HASH_MASK, trigram_mix


@dataclass(frozen=True)
class WordSequence:
    """An article's content words in text order: ``words`` their 24-bit term ids, ``weights`` a weight
    per word (its IDF, up to a factor common to the article), ``shingles`` the hash of the trigram
    starting at each word (an article of fewer than three words has its words instead)."""

    words: np.ndarray  # uint32
    weights: np.ndarray  # float64
    shingles: np.ndarray  # uint32


def sequence_of(sig: Signature) -> WordSequence | None:
    """The :class:`WordSequence` of a signature that records its words (``Signature.words``), else None.

    The per-word weight is read back from the signature's term vector,
    whose weight of a term is ``(1 + log tf) * idf`` scaled to unit norm:
    dividing by ``1 + log tf`` leaves the IDF times the article's scale,
    which no cosine sees.  The trigrams are hashed as signing hashes
    them, so they are the values of ``Signature.shingles``, in text order.
    """
    if sig.words is None:
        return None
    crc = np.asarray(sig.words, dtype=np.uint32)
    words = crc & HASH_MASK
    ids, counts = np.unique(words, return_counts=True)
    at = np.searchsorted(sig.term_ids, ids)
    found = (at < len(sig.term_ids)) & (sig.term_ids[np.minimum(at, len(sig.term_ids) - 1)] == ids) \
        if len(sig.term_ids) else np.zeros(len(ids), dtype=bool)
    per_term = np.zeros(len(ids), dtype=np.float64)
    per_term[found] = sig.term_weights[at[found]] / (1.0 + np.log(counts[found]))
    weights = per_term[np.searchsorted(ids, words)]
    shingles = (trigram_mix(crc) & HASH_MASK) if len(crc) >= 3 else words
    return WordSequence(words, weights, shingles.astype(np.uint32))


def _edge_runs(positions: np.ndarray, length: int, gap: int) -> tuple[np.ndarray, np.ndarray]:
    """Which of the sorted ``positions`` (of shared trigrams) form the run at the head, and which the
    run at the tail, of a sequence of ``length`` trigrams: consecutive positions at most ``gap``
    apart, the first (last) at most ``gap`` from the edge.  One run may be both."""
    head = np.zeros(len(positions), dtype=bool)
    tail = np.zeros(len(positions), dtype=bool)
    if not len(positions):
        return head, tail
    breaks = np.flatnonzero(np.diff(positions) > gap)
    if positions[0] <= gap:
        head[: (breaks[0] + 1 if len(breaks) else len(positions))] = True
    if length - 1 - positions[-1] <= gap:
        tail[(breaks[-1] + 1 if len(breaks) else 0):] = True
    return head, tail


def _edge_only(shingles: np.ndarray, common: np.ndarray, gap: int) -> tuple[set[int], set[int]]:
    """The shared trigram hashes every occurrence of which lies in the head run; and those every
    occurrence of which lies in the tail run."""
    pos = np.flatnonzero(np.isin(shingles, common))
    head, tail = _edge_runs(pos, len(shingles), gap)
    hashes = shingles[pos].tolist()
    only_head = {h for h, x in zip(hashes, head) if x} - {h for h, x in zip(hashes, head) if not x}
    only_tail = {h for h, x in zip(hashes, tail) if x} - {h for h, x in zip(hashes, tail) if not x}
    return only_head, only_tail


def edge_blocks(a: WordSequence, b: WordSequence, gap: int) -> tuple[np.ndarray, np.ndarray, set[int]]:
    """The shared trigrams found only in a run at the same edge of both texts (head of both, or tail
    of both), and the word masks of ``a`` and ``b`` outside the blocks those runs cover.

    A block must be the smaller part of each text: a template is glued onto an article, and a text
    that is mostly the other's head or tail (a snap, a page, a re-send) is that article's content.
    Returns no trigrams when there is no such block.
    """
    keep_a = np.ones(len(a.words), dtype=bool)
    keep_b = np.ones(len(b.words), dtype=bool)
    common = np.intersect1d(a.shingles, b.shingles)
    if not len(common) or min(len(a.words), len(b.words)) < 3:
        return keep_a, keep_b, set()
    # cheap test first: a run at an edge of both texts starts within ``gap`` of that edge in both
    at_head = all(np.isin(s.shingles[: gap + 1], common).any() for s in (a, b))
    at_tail = all(np.isin(s.shingles[-gap - 1:], common).any() for s in (a, b))
    if not at_head and not at_tail:
        return keep_a, keep_b, set()
    (head_a, tail_a), (head_b, tail_b) = _edge_only(a.shingles, common, gap), _edge_only(b.shingles, common, gap)
    template_head, template_tail = head_a & head_b, tail_a & tail_b
    if not template_head and not template_tail:
        return keep_a, keep_b, set()
    for s, keep in ((a, keep_a), (b, keep_b)):
        if template_head:
            keep[: np.flatnonzero(np.isin(s.shingles, list(template_head))).max() + 3] = False
        if template_tail:
            keep[np.flatnonzero(np.isin(s.shingles, list(template_tail))).min():] = False
        if keep.sum() * 2 <= len(keep):  # the block is not the smaller part of this text
            return np.ones(len(a.words), dtype=bool), np.ones(len(b.words), dtype=bool), set()
    return keep_a, keep_b, template_head | template_tail


def weighted_cosine(a: WordSequence, keep_a: np.ndarray, b: WordSequence, keep_b: np.ndarray) -> float:
    """Cosine of the (1 + log tf) * weight vectors of the kept words of ``a`` and ``b``."""

    def vector(s: WordSequence, keep: np.ndarray) -> dict[int, float]:
        ids, counts = np.unique(s.words[keep], return_counts=True)
        w = dict(zip(s.words[keep].tolist(), s.weights[keep].tolist()))
        return {i: (1.0 + np.log(n)) * w[i] for i, n in zip(ids.tolist(), counts.tolist())}

    va, vb = vector(a, keep_a), vector(b, keep_b)
    na = sum(x * x for x in va.values()) ** 0.5
    nb = sum(x * x for x in vb.values()) ** 0.5
    if not na or not nb:
        return 0.0
    dot = sum(x * vb[i] for i, x in sorted(va.items()) if i in vb)
    return float(dot / (na * nb))


@dataclass(frozen=True)
class Blind:
    """Cosine and reuse of a pair with a template set aside: ``cosine`` of the remainders when it is
    lower, ``reuse`` counting no template trigram; ``template`` how many shared trigrams were set
    aside (0: none, and the cosine and reuse are the ones given); ``keep_a``/``keep_b`` the word
    masks outside the template."""

    cosine: float
    reuse: float
    template: int
    keep_a: np.ndarray
    keep_b: np.ndarray


def template_blind(a: WordSequence, b: WordSequence, sorted_a: np.ndarray, sorted_b: np.ndarray,
                   cos: float, reuse: float, settings_gap: int, min_cosine: float) -> Blind:
    """The pair's cosine and reuse with an outlet template set aside (see the module docstring).

    ``sorted_a``/``sorted_b`` are the articles' sorted distinct trigram hashes (what ``reuse`` was
    counted on); setting a template aside only ever lowers the cosine and the reuse.
    """
    keep_a, keep_b, template = edge_blocks(a, b, settings_gap) if reuse > 0 else (None, None, set())
    if template:
        rest = weighted_cosine(a, keep_a, b, keep_b)
        if rest < min_cosine:  # the remainders report different things: the runs are template
            shared = len(set(np.intersect1d(sorted_a, sorted_b).tolist()) - template)
            n = min(len(sorted_a), len(sorted_b))
            return Blind(min(cos, rest), min(reuse, shared / n if n else 0.0), len(template), keep_a, keep_b)
    everything = np.ones(len(a.words), dtype=bool), np.ones(len(b.words), dtype=bool)
    return Blind(cos, reuse, 0, *everything)


__all__ = ["WordSequence", "sequence_of", "edge_blocks", "weighted_cosine", "Blind", "template_blind"]
