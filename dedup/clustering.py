"""The clustering decision, written once: which story each arriving article starts, joins or merges.

Two articles are *linked* when LSH makes them candidates and verification
accepts the pair (published within the window, cosine of their weighted word
vectors at least ``min_cosine``, text reuse at least ``min_reuse``, an outlet
template they share not counted: :mod:`dedup.templates`).  Stories
are the connected components of the link graph.  Both tests depend only on
the two articles and LSH candidacy is symmetric, so the final stories do not
depend on arrival order; only story *ids* do (a story is named after the
article that started it, a merge keeps the smallest id).

Every index reaches a decision the same way: it reads, for a run of arriving
articles, what the store holds for their candidates (a :class:`Seen` each),
hands that to :func:`plan_run`, and writes the :class:`RunPlan` it gets back
(re-checking, when other writers share the store, that what it read still
holds).  :func:`plan_run` does no I/O.  Articles of the run see each other as
candidates, and so do the articles of a run planned before whose writes the
reads did not include yet (``earlier``, an :class:`Overlay`): a pipelined
index reads run k+1 while run k is being written.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from .records import Assignment, Entry, Signature
from .settings import Settings
from .signature import pair_cosines, pair_reuses
from .templates import at_same_edge, sequence_of, template_blind

Verdict = tuple[bool, float, float]  # (linked, cosine, reuse); reuse is 0 when it was not computed


def within_window(a: int | None, b: int | None, window_days: int) -> bool:
    """Undated articles can match anything; dated ones only within the window."""
    return a is None or b is None or abs(a - b) <= window_days


def verify_pairs(a: Sequence[Signature], b: Sequence[Signature], settings: Settings,
                 templates: bool = True) -> list[Verdict]:
    """Is each pair ``(a[k], b[k])`` one story?  All pairs in one batch of vector work.

    Cheapest test first: the publication window, then cosine for those in
    it, then text reuse only for the pairs whose cosine passed, and last,
    for the pairs that pass, whether their shared text is only an outlet
    template (:mod:`dedup.templates`); with ``templates`` False that last
    test is left to the caller (:func:`plan_run` runs it once per story).  A pair's
    verdict is the same whatever pairs share its batch, and the same both
    ways round.
    """
    out: list[Verdict] = [(False, 0.0, 0.0)] * len(a)
    w = settings.window_days
    near = [k for k, (x, y) in enumerate(zip(a, b)) if within_window(x.day, y.day, w)]
    if not near:
        return out
    cos = pair_cosines([a[k] for k in near], [b[k] for k in near])
    close = []
    for k, c in zip(near, cos):
        out[k] = (False, c, 0.0)
        if c >= settings.min_cosine:
            close.append(k)
    if close:
        for k, r in zip(close, pair_reuses([a[k] for k in close], [b[k] for k in close])):
            c = out[k][1]
            if templates and r >= settings.min_reuse:  # what an outlet template alone shares is no reuse
                c, r = _template_blind(a[k], b[k], c, r, settings)
            out[k] = (c >= settings.min_cosine and r >= settings.min_reuse, c, r)
    return out


def _template_blind(a: Signature, b: Signature, cos: float, reuse: float, settings: Settings) -> tuple[float, float]:
    """Cosine and reuse of a pair with an outlet template set aside (:mod:`dedup.templates`); the
    given ones for a signature made by hand, which records no words."""
    if not at_same_edge(a, b, settings.template_gap):  # most pairs: no block can be at an edge of both
        return cos, reuse
    seq_a, seq_b = sequence_of(a), sequence_of(b)
    assert seq_a is not None and seq_b is not None  # at_same_edge holds only for signatures with words
    blind = template_blind(seq_a, seq_b, a.shingles, b.shingles, cos, reuse,
                           settings.template_gap, settings.min_cosine, settings.min_reuse)
    return blind.cosine, blind.reuse


def verify(a: Signature, b: Signature, settings: Settings) -> Verdict:
    """:func:`verify_pairs` of one pair."""
    return verify_pairs([a], [b], settings)[0]


def verify_many(a: Signature, others: Sequence[Signature], settings: Settings) -> list[Verdict]:
    """:func:`verify_pairs` of ``a`` against each of ``others``."""
    return verify_pairs([a] * len(others), others, settings)


def band_keys(signatures: Sequence[Signature], settings: Settings) -> np.ndarray:
    """Per signature, one key per LSH band (an ``(n, bands)`` array): two signatures are LSH candidates
    when they share a key and are within the window.

    With one row per band a key is an integer, ``value * bands + band``; with several, the band's raw
    values and its number as bytes (the Redis index names its buckets by the same bytes).  Either way
    two keys are equal exactly when the band and its values are.
    """
    bands, rows = settings.bands, settings.rows
    if not signatures:
        return np.empty((0, bands), dtype=np.uint64)
    m = np.stack([s.minhash[: bands * rows] for s in signatures]).astype("<u4").reshape(len(signatures), bands, rows)
    if rows == 1:
        return m[:, :, 0].astype(np.uint64) * np.uint64(bands) + np.arange(bands, dtype=np.uint64)
    keyed = np.empty((len(signatures), bands), dtype=[("band", "<u2"), ("value", "<u4", (rows,))])
    keyed["band"] = np.arange(bands)
    keyed["value"] = m
    return keyed.view(f"V{keyed.dtype.itemsize}")


def pairs_within(keys: np.ndarray, days: Sequence[int | None], window_days: int) -> list[tuple[int, int]]:
    """``(later, earlier)`` positions of the rows of ``keys`` that share a key and are within the window:
    the candidate pairs inside a run, found with one sort of its keys."""
    n = len(keys)
    if n < 2:
        return []
    flat = keys.ravel()
    if flat.dtype.kind == "V":  # byte keys: their distinct values numbered, equal exactly when equal
        flat = np.unique(flat, return_inverse=True)[1].ravel()
    order = np.argsort(flat, kind="stable")
    same = np.flatnonzero(flat[order][1:] == flat[order][:-1])
    if not len(same):
        return []
    owner = order // keys.shape[1]
    starts = same[np.r_[True, np.diff(same) > 1]]
    stops = same[np.r_[np.diff(same) > 1, True]] + 2
    pairs: set[tuple[int, int]] = set()
    for lo, hi in zip(starts.tolist(), stops.tolist()):  # runs of equal keys are short
        group = sorted(set(owner[lo:hi].tolist()))
        for x in range(1, len(group)):
            for y in range(x):
                if within_window(days[group[x]], days[group[y]], window_days):
                    pairs.add((group[x], group[y]))
    return sorted(pairs)


@dataclass
class Seen:
    """What the store holds for one arriving article, as an index read it."""

    stored: bool = False  # its id is stored already: it is unchanged or replaced, not planned here
    sigs: dict[str, Signature] = field(default_factory=dict)  # stored candidates by id
    stories: dict[str, str] = field(default_factory=dict)  # their stories (a candidate may have none yet)
    own: list[str] = field(default_factory=list)  # members of a live story named after the article
    verdicts: dict[str, Verdict] | None = None  # the candidates' verdicts, when the index already has them


@dataclass
class Overlay:
    """Articles planned but not in the reads at hand: what a run adds for the runs planned after it."""

    sig: dict[str, Signature] = field(default_factory=dict)  # id -> signature, in planning order
    story: dict[str, str] = field(default_factory=dict)  # id -> story as planned
    renamed: dict[str, str] = field(default_factory=dict)  # story merged away -> the story it went into
    keys: dict[int | bytes, list[str]] = field(default_factory=dict)  # band key -> ids, in planning order
    # every story an article was planned into: a fresh article whose id is not among them has no
    # member here, so only then is the overlay searched for members of a story named after it
    named: set[str] = field(default_factory=set)


@dataclass
class Decision:
    """One planned article."""

    at: int  # its position in the run
    assignment: Assignment
    from_earlier: dict[str, str]  # candidates from the ``earlier`` overlay -> their story as planned
    shared_earlier: list[tuple[int, list[str]]]  # its bands holding ``earlier`` articles: band -> their ids
    renames: dict[str, str]  # the merges planned before it (story -> where it went), for :meth:`resolve`

    def resolve(self, story: str) -> str:
        """Where ``story`` is when this article is written: what an index re-checks its candidates'
        stories against (the merges of articles planned after it are not written yet)."""
        while story in self.renames:
            story = self.renames[story]
        return story


@dataclass
class RunPlan:
    """What :func:`plan_run` decided: the articles before ``stop``, in order."""

    decisions: list[Decision]
    stop: int  # position of the first article stored already or repeated (len(run) when none)
    overlay: Overlay  # the run's planned articles, for the run planned after it
    earlier: Overlay  # the overlay the run was planned on

    def resolve(self, story: str) -> str:
        """Where ``story`` is once this run and the earlier one are written (merges rename stories)."""
        while True:
            nxt = self.overlay.renamed.get(story) or self.earlier.renamed.get(story)
            if nxt is None:
                return story
            story = nxt


_NO_RENAMES: dict[str, str] = {}


def fresh_story_id(wanted: str, own: Sequence[str], story_taken: Callable[[str], bool]) -> str:
    """A story id not in use: the founding article's id, suffixed when a live story already has it."""
    if not own:
        return wanted
    n = 2
    while story_taken(f"{wanted}~{n}"):
        n += 1
    return f"{wanted}~{n}"


def decide(entry: Entry, sigs: dict[str, Signature], stories: dict[str, str], verdicts: dict[str, Verdict],
           own: Sequence[str], story_taken: Callable[[str], bool]) -> Assignment:
    """The one decision: join the story of the linked candidates, merge several, or start a new one."""
    links = [(c, round(verdicts[c][1], 4), round(verdicts[c][2], 4)) for c in sorted(sigs) if verdicts[c][0]]
    linked = sorted({stories[c] for c, _, _ in links if c in stories})
    if not linked:
        return Assignment(entry.id, fresh_story_id(entry.id, own, story_taken), "new", links=links)
    return Assignment(entry.id, linked[0], "merged" if linked[1:] else "joined", merged=linked[1:], links=links)


def _one_link_per_story(e: Entry, sigs: dict[str, Signature], stories: dict[str, str],
                        verdicts: dict[str, Verdict], settings: Settings) -> None:
    """Set aside the accepted candidates whose shared text is only an outlet template (:mod:`dedup.templates`),
    in place, testing each candidate story's members in id order only until one holds.

    An article joins a story when one link to it holds, so the partition is the one testing every pair
    gives, for a fraction of the tests: most members of a growing story are rewrites of each other.  A
    member left untested keeps the verdict verification gave it.
    """
    by_story: dict[str, list[str]] = {}
    for c in sorted(sigs):
        by_story.setdefault(stories.get(c, c), []).append(c)
    for members in by_story.values():
        for c in members:
            _, cos, reuse = verdicts[c]
            cos, reuse = _template_blind(e.signature, sigs[c], cos, reuse, settings)
            if cos >= settings.min_cosine and reuse >= settings.min_reuse:
                break
            verdicts[c] = (False, cos, reuse)
            del sigs[c]
            stories.pop(c, None)


def first_stop(run: Sequence[Entry], seen: Sequence[Seen], earlier: Overlay | None = None) -> int:
    """Position of the first article of ``run`` stored already or repeated (in the run or ``earlier``)."""
    ids = set(earlier.sig) if earlier is not None else set()
    for k, (e, s) in enumerate(zip(run, seen)):
        if s.stored or e.id in ids:
            return k
        ids.add(e.id)
    return len(run)


def plan_run(run: Sequence[Entry], seen: Sequence[Seen], settings: Settings,
             story_taken: Callable[[str], bool], earlier: Overlay | None = None, *, overlay: bool = False) -> RunPlan:
    """Decide a run of arriving articles in order, up to the first one stored already or repeated.

    ``seen[k]`` is what the store holds for ``run[k]``; ``earlier`` holds
    articles planned before whose writes those reads lack.  Each article
    sees as candidates the stored ones, the earlier run's and its own run's
    earlier articles that share a band with it within the window, with
    their stories as planned so far.  Every candidate pair is verified in
    one batch (a pair's verdict does not depend on its batch), so the plan
    is the one deciding article by article would give.  ``story_taken``
    answers whether a live story has a given id; it is asked only when a
    story is already named after an article that starts a new one.  Only
    with ``overlay=True`` does the plan's overlay hold the band keys a later
    run needs to be planned on it (an index that writes a run before it
    reads the next one saves building them).
    """
    earlier = earlier if earlier is not None else Overlay()
    stop = first_stop(run, seen, earlier)
    cur = Overlay()
    plan = RunPlan([], stop, cur, earlier)
    if stop == 0:
        return plan
    window = settings.window_days
    todo = run[:stop]
    # candidates from the overlays: articles of the run before this one, and the earlier run's, sharing a band
    peers: list[dict[str, bool]] = [{} for _ in todo]  # per article: peer id -> it is from the earlier run
    shared: list[list[tuple[int, list[str]]]] = [[] for _ in todo]
    keys = band_keys([e.signature for e in todo], settings) if (overlay or len(todo) > 1 or earlier.keys) else None
    rows = keys.tolist() if keys is not None and (overlay or earlier.keys) else None
    if earlier.keys and rows is not None:
        for k, e in enumerate(todo):
            for b, key in enumerate(rows[k]):
                ids = earlier.keys.get(key)
                if ids:
                    shared[k].append((b, ids))
                    for c in ids:
                        if c not in peers[k] and within_window(e.signature.day, earlier.sig[c].day, window):
                            peers[k][c] = True
    if keys is not None:
        for k, j in pairs_within(keys, [e.signature.day for e in todo], window):
            peers[k].setdefault(todo[j].id, False)

    # every pair not yet verified, in one batch
    sig_of = {e.id: e.signature for e in todo}
    ask_a: list[Signature] = []
    ask_b: list[Signature] = []
    asked: list[tuple[int, str]] = []
    for k, e in enumerate(todo):
        given = seen[k].verdicts or {}
        for c, sig in seen[k].sigs.items():
            if c not in given:
                asked.append((k, c))
                ask_a.append(e.signature)
                ask_b.append(sig)
        for c, from_earlier in peers[k].items():
            if c not in seen[k].sigs:
                asked.append((k, c))
                ask_a.append(e.signature)
                ask_b.append(earlier.sig[c] if from_earlier else sig_of[c])
    verdicts = [dict(s.verdicts or {}) for s in seen[:stop]]
    # the outlet-template test is left out here: run below, per candidate story, until one link holds
    for (k, c), v in zip(asked, verify_pairs(ask_a, ask_b, settings, templates=False)):
        verdicts[k][c] = v

    for k, e in enumerate(todo):
        renames = {**earlier.renamed, **cur.renamed} if (earlier.renamed or cur.renamed) else _NO_RENAMES
        s = seen[k]
        sigs = {c: sig for c, sig in s.sigs.items() if verdicts[k][c][0]}  # unlinked ones cannot change it
        stories = {c: plan.resolve(st) for c, st in s.stories.items() if c in sigs}
        from_earlier: dict[str, str] = {}
        for c, is_earlier in peers[k].items():
            layer = earlier if is_earlier else cur
            story = plan.resolve(layer.story[c])
            if is_earlier:
                from_earlier[c] = story
            if verdicts[k][c][0]:
                sigs[c] = layer.sig[c]
                stories[c] = story
        _one_link_per_story(e, sigs, stories, verdicts[k], settings)
        own = [] if (e.id in cur.renamed or e.id in earlier.renamed) else list(s.own)
        if e.id in cur.named or e.id in earlier.named:
            own += [c for layer in (earlier, cur) for c in layer.sig if plan.resolve(layer.story[c]) == e.id]
        assignment = decide(e, sigs, stories, verdicts[k], sorted(own), story_taken)
        for old in assignment.merged:
            cur.renamed[old] = assignment.story
        cur.sig[e.id] = e.signature
        cur.story[e.id] = assignment.story
        cur.named.add(assignment.story)
        if overlay and rows is not None:
            for key in rows[k]:
                cur.keys.setdefault(key, []).append(e.id)
        plan.decisions.append(Decision(k, assignment, from_earlier, shared[k], renames))
    return plan


def decide_one(entry: Entry, seen: Seen, settings: Settings, story_taken: Callable[[str], bool]) -> Assignment:
    """:func:`plan_run` of a single fresh article (its id not stored)."""
    return plan_run([entry], [seen], settings, story_taken).decisions[0].assignment


def with_late_links(assignment: Assignment, folded: Sequence[str], links: list[tuple[str, float, float]]
                    ) -> Assignment:
    """An assignment after links found once it was written (an index whose buckets are written after the
    commit, the Redis spread layout): ``folded`` are the stories those links joined, the first being where
    they all went ([] when the article was deleted meanwhile), ``links`` the links made."""
    links = assignment.links + links
    if not folded:
        return Assignment(assignment.article_id, assignment.story, assignment.action, merged=assignment.merged,
                          links=links)
    founded = assignment.action == "new"
    story = folded[0]
    others = set(folded[1:]) - ({assignment.story} if founded else set())
    merged = sorted((set(assignment.merged) | others | ({assignment.story} if not founded else set())) - {story})
    action = "merged" if merged else ("joined" if story != assignment.story or not founded else "new")
    return Assignment(assignment.article_id, story, action, merged=merged, links=links)


__all__ = ["with_late_links", "within_window", "verify", "verify_many", "verify_pairs", "band_keys", "Seen", "Overlay", "Decision",
           "RunPlan", "plan_run", "decide_one", "decide", "fresh_story_id", "first_stop"]
