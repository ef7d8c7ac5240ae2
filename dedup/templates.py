"""Outlet templates: text two articles share only as a block at the same edge of both.

Web outlets wrap every article in the same lines (an archive notice at the
tail, a subscription plea at the head).  Two unrelated articles of one outlet
then share a run of trigrams that carries none of either story.  A run of
shared trigrams is a *template* when it sits at the same edge of both texts
-- the head (of the text, or of its body under a headline line:
``Signature.lead``) or the tail -- is the smaller part of each, and what
remains of the two texts outside it is not a rewrite: it shares less than
``min_reuse`` of text and is not about the same thing (cosine of the
remainders below ``min_cosine``).  A rewrite that keeps its source's lead verbatim also shares
a head run, but its remainder still reports the same story, so the run counts
as reuse.

Both levels use it: :func:`dedup.clustering.verify_pairs` decides stories
with it from what a :class:`~dedup.records.Signature` holds, and
:mod:`dedup.evidence` decides events with it from the text.  Every function
here is pure and symmetric in its two articles.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Protocol

import numpy as np

from .records import Signature
from .signature import HASH_MASK, trigrams_of


class WordSequence(Protocol):
    """An article's content words in text order: ``words`` their 24-bit term ids, ``weights`` a weight
    per word (its IDF, up to a factor common to the article), ``shingles`` the hash of the trigram
    starting at each word (an article of fewer than three words has its words instead)."""

    @property
    def words(self) -> np.ndarray: ...  # uint32

    @property
    def weights(self) -> np.ndarray: ...  # float64

    @property
    def shingles(self) -> np.ndarray: ...  # uint32

    @property
    def lead(self) -> int: ...  # words of the headline line (0: none)

    @property
    def distinct(self) -> np.ndarray: ...  # the distinct shingles, sorted


class SignedSequence:
    """The :class:`WordSequence` of a signature that records its words (``Signature.words``).

    The per-word weight is read back from the signature's term vector,
    whose weight of a term is ``(1 + log tf) * idf`` scaled to unit norm:
    dividing by ``1 + log tf`` leaves the IDF times the article's scale,
    which no cosine sees; it is worked out only when a cosine asks.  The
    trigrams are hashed as signing hashes them, so they are the values of
    ``Signature.shingles``, in text order.
    """

    def __init__(self, sig: Signature) -> None:
        assert sig.words is not None
        self._sig = sig
        crc = np.asarray(sig.words, dtype=np.uint32)
        self.words = crc & HASH_MASK
        self.lead = sig.lead
        self.shingles = trigrams_of(crc)

    @property
    def distinct(self) -> np.ndarray:
        return self._sig.shingles  # signing's sorted distinct trigrams of these words

    @cached_property
    def weights(self) -> np.ndarray:
        sig, words = self._sig, self.words
        ids, counts = np.unique(words, return_counts=True)
        at = np.searchsorted(sig.term_ids, ids)
        found = (at < len(sig.term_ids)) & (sig.term_ids[np.minimum(at, len(sig.term_ids) - 1)] == ids) \
            if len(sig.term_ids) else np.zeros(len(ids), dtype=bool)
        per_term = np.zeros(len(ids), dtype=np.float64)
        per_term[found] = sig.term_weights[at[found]] / (1.0 + np.log(counts[found]))
        return per_term[np.searchsorted(ids, words)]


def sequence_of(sig: Signature) -> SignedSequence | None:
    """The :class:`SignedSequence` of a signature, None for one made by hand (no words recorded); kept
    on the signature, which meets a pair check once per candidate."""
    if sig.words is None:
        return None
    found = sig.derived.get("sequence")
    if found is None:
        found = sig.derived["sequence"] = SignedSequence(sig)
    return found


def _grams(sig: Signature, start: int, stop: int) -> np.ndarray:
    """``trigrams_of(sig.words[start:stop])``, sliced from the signature's kept trigram sequence
    when the slice holds three words or more."""
    words = sig.words
    assert words is not None
    start, stop, _ = slice(start, stop).indices(len(words))
    if stop - start < 3:
        return trigrams_of(words[start:stop])
    seq = sequence_of(sig)
    assert seq is not None
    return seq.shingles[start: stop - 2]


def _edge_grams(sig: Signature, gap: int) -> tuple[np.ndarray, int]:
    """The trigrams within ``gap`` of the head of a signature's words (and of the line under its
    headline), then those within ``gap`` of its tail, and how many are head ones; kept on the signature."""
    key = ("edges", gap)
    found = sig.derived.get(key)
    if found is None:
        head = [_grams(sig, 0, gap + 3)]
        if sig.lead:
            head.append(_grams(sig, sig.lead, sig.lead + gap + 3))
        head_grams = np.concatenate(head)
        found = sig.derived[key] = (np.concatenate([head_grams, _grams(sig, -gap - 3, len(sig.words))]),
                                    len(head_grams))
    return found


def at_same_edge(a: Signature, b: Signature, gap: int) -> bool:
    """Whether some trigram within ``gap`` of the head of both texts (of the text, or of the line under its
    headline), or of the tail of both, is shared: a cheap test that :func:`edge_blocks` can find a block,
    from a few trigrams of each signature's words looked up in the other's sorted trigrams."""
    if a.words is None or b.words is None:
        return False
    (grams_a, heads_a), (grams_b, heads_b) = _edge_grams(a, gap), _edge_grams(b, gap)
    in_b, in_a = _members(grams_a, b.shingles), _members(grams_b, a.shingles)
    return bool((in_b[:heads_a].any() and in_a[:heads_b].any()) or (in_b[heads_a:].any() and in_a[heads_b:].any()))


def _edge_runs(positions: np.ndarray, length: int, gap: int, lead: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Which of the sorted ``positions`` (of shared trigrams) form the run at the head, and which the
    run at the tail, of a sequence of ``length`` trigrams: consecutive positions at most ``gap``
    apart, the first (last) at most ``gap`` from the edge.  The head edge is also the line under a
    headline of ``lead`` words: the body's top, where outlets put their templates too.  One run may be
    both."""
    head = np.zeros(len(positions), dtype=bool)
    tail = np.zeros(len(positions), dtype=bool)
    if not len(positions):
        return head, tail
    breaks = np.flatnonzero(np.diff(positions) > gap)
    if positions[0] <= gap or lead <= positions[0] <= lead + gap:
        head[: (breaks[0] + 1 if len(breaks) else len(positions))] = True
    if length - 1 - positions[-1] <= gap:
        tail[(breaks[-1] + 1 if len(breaks) else 0):] = True
    return head, tail


def _members(values: np.ndarray, sorted_set: np.ndarray) -> np.ndarray:
    """Which of ``values`` are in ``sorted_set`` (sorted, distinct): a mask."""
    if not len(sorted_set):
        return np.zeros(len(values), dtype=bool)
    at = np.minimum(np.searchsorted(sorted_set, values), len(sorted_set) - 1)
    return sorted_set[at] == values


def _occurrences(sequence: np.ndarray, common: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Where the trigrams of ``common`` (sorted, distinct) occur in ``sequence``: a mask over the
    sequence, and for each occurrence, in order, its trigram's index in ``common``."""
    at = np.minimum(np.searchsorted(common, sequence), len(common) - 1)
    hit = common[at] == sequence
    return hit, at[hit]


def _marked(indices: np.ndarray, size: int) -> np.ndarray:
    """A mask of ``size`` with ``indices`` set."""
    mask = np.zeros(size, dtype=bool)
    mask[indices] = True
    return mask


def _edge_only(common: np.ndarray, which: np.ndarray, head: np.ndarray, tail: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Of the shared trigrams ``common``, occurring as ``which`` (indices into ``common``, in text
    order) whose head and tail runs are the masks ``head`` and ``tail``: those every occurrence of which
    lies in the head run, and those every occurrence of which lies in the tail run (each sorted)."""

    def only(run: np.ndarray) -> np.ndarray:
        return common[_marked(which[run], len(common)) & ~_marked(which[~run], len(common))]

    return only(head), only(tail)


def edge_blocks(a: WordSequence, b: WordSequence, gap: int,
                rest_limit: float | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The shared trigrams found only in a run at the same edge of both texts (head of both, or tail
    of both), sorted, and the word masks of ``a`` and ``b`` outside the blocks those runs cover.

    With ``rest_limit``, none either when one of the texts shares at least that many distinct
    trigrams away from its edge runs: that much text reused elsewhere is a rewrite's, not a template's.

    A block must be the smaller part of each text: a template is glued onto an article, and a text
    that is mostly the other's head or tail (a snap, a page, a re-send) is that article's content.
    Returns no trigrams when there is no such block.
    """
    def no_block() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return np.ones(len(a.words), dtype=bool), np.ones(len(b.words), dtype=bool), np.empty(0, dtype=np.uint32)

    if min(len(a.words), len(b.words)) < 3:
        return no_block()
    common = a.distinct[_members(a.distinct, b.distinct)]
    if not len(common):
        return no_block()
    (shared_a, which_a), (shared_b, which_b) = _occurrences(a.shingles, common), _occurrences(b.shingles, common)
    # cheap test first: a run at an edge of both texts starts within ``gap`` of that edge in both
    at_head = all(shared[: gap + 1].any() or (s.lead and shared[s.lead: s.lead + gap + 1].any())
                  for s, shared in ((a, shared_a), (b, shared_b)))
    at_tail = shared_a[-gap - 1:].any() and shared_b[-gap - 1:].any()
    if not at_head and not at_tail:
        return no_block()
    runs = []
    for s, shared, which in ((a, shared_a, which_a), (b, shared_b, which_b)):
        head, tail = _edge_runs(np.flatnonzero(shared), len(s.shingles), gap, s.lead)
        if rest_limit is not None:
            rest = which[~(head | tail)]
            if len(rest) >= rest_limit and np.count_nonzero(_marked(rest, len(common))) >= rest_limit:
                return no_block()
        runs.append(_edge_only(common, which, head, tail))
    (head_a, tail_a), (head_b, tail_b) = runs
    template_head = np.intersect1d(head_a, head_b, assume_unique=True)
    template_tail = np.intersect1d(tail_a, tail_b, assume_unique=True)
    if not len(template_head) and not len(template_tail):
        return no_block()
    keep_a = np.ones(len(a.words), dtype=bool)
    keep_b = np.ones(len(b.words), dtype=bool)
    for s, keep in ((a, keep_a), (b, keep_b)):
        if len(template_head):
            at = np.flatnonzero(_members(s.shingles, template_head))
            keep[(0 if at[0] <= gap else at[0]): at[-1] + 3] = False  # under a headline: the headline stays
        if len(template_tail):
            keep[np.flatnonzero(_members(s.shingles, template_tail)).min():] = False
        if keep.sum() * 2 <= len(keep):  # the block is not the smaller part of this text
            return no_block()
    return keep_a, keep_b, np.union1d(template_head, template_tail)


def weighted_cosine(a: WordSequence, keep_a: np.ndarray, b: WordSequence, keep_b: np.ndarray) -> float:
    """Cosine of the (1 + log tf) * weight vectors of the kept words of ``a`` and ``b``."""

    def vector(s: WordSequence, keep: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        words, weights = s.words[keep], s.weights[keep]
        # a word's weight as its last occurrence gives it (two words whose 24-bit ids collide share one)
        ids, last, counts = np.unique(words[::-1], return_index=True, return_counts=True)
        return ids, (1.0 + np.log(counts)) * weights[::-1][last]

    (ia, va), (ib, vb) = vector(a, keep_a), vector(b, keep_b)
    na, nb = float(np.sqrt(np.dot(va, va))), float(np.sqrt(np.dot(vb, vb)))
    if not na or not nb:
        return 0.0
    _, at_a, at_b = np.intersect1d(ia, ib, assume_unique=True, return_indices=True)
    return float(np.dot(va[at_a], vb[at_b]) / (na * nb))


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
                   cos: float, reuse: float, settings_gap: int, min_cosine: float, min_reuse: float) -> Blind:
    """The pair's cosine and reuse with an outlet template set aside (see the module docstring).

    ``sorted_a``/``sorted_b`` are the articles' sorted distinct trigram hashes (what ``reuse`` was
    counted on); setting a template aside only ever lowers the cosine and the reuse.
    """
    n = min(len(sorted_a), len(sorted_b))
    if reuse > 0:
        keep_a, keep_b, template = edge_blocks(a, b, settings_gap, min_reuse * n)
        if not len(template):
            return Blind(cos, reuse, 0, keep_a, keep_b)
        rest = weighted_cosine(a, keep_a, b, keep_b)
        if rest < min_cosine:  # the remainders report different things: the runs are template
            shared = len(np.setdiff1d(np.intersect1d(sorted_a, sorted_b, assume_unique=True), template,
                                      assume_unique=True))
            return Blind(min(cos, rest), min(reuse, shared / n if n else 0.0), len(template), keep_a, keep_b)
    return Blind(cos, reuse, 0, np.ones(len(a.words), dtype=bool), np.ones(len(b.words), dtype=bool))


__all__ = ["WordSequence", "SignedSequence", "sequence_of", "at_same_edge", "edge_blocks", "weighted_cosine", "Blind",
           "template_blind"]
