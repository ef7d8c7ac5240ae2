"""Story assignment: which story an arriving article belongs to.

Two articles are *linked* when LSH makes them candidates and verification
accepts the pair (published within the window, cosine of their weighted word
vectors at least ``min_cosine``, and text reuse at least ``min_reuse``).
Stories are the connected components of the link graph.

Both tests depend only on the two articles, and LSH candidacy is symmetric,
so the final set of links, and therefore the stories, do not depend on the
order in which articles arrive: an arriving article starts a story, joins
the one it links to, or merges the several it bridges.  Only story *ids*
depend on order (a story is named after the article that started it; a
merge keeps the smallest id), never the grouping.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from .index.base import StoryIndex
from .index.memory import within_window
from .records import Assignment, Entry, Signature
from .settings import Settings
from .signature import band_hashes, pair_cosines, pair_reuses


def verify(a: Signature, b: Signature, settings: Settings) -> tuple[bool, float, float]:
    """Is the pair one story?  Returns (linked, cosine, reuse); reuse is 0 when not computed."""
    return verify_many(a, [b], settings)[0]


def verify_many(a: Signature, others: list[Signature], settings: Settings) -> list[tuple[bool, float, float]]:
    """:func:`verify` of ``a`` against each of ``others``, with the vector work batched."""
    return verify_pairs([a] * len(others), others, settings)


def verify_pairs(a: Sequence[Signature], b: Sequence[Signature], settings: Settings) -> list[tuple[bool, float, float]]:
    """:func:`verify` of ``a[k]`` and ``b[k]`` for every k, all pairs in one batch of vector work.

    Cheapest test first: the publication window, then cosine for those in
    it, then text reuse only for the pairs whose cosine passed.  A pair's
    verdict is the same whatever pairs share its batch.
    """
    out: list[tuple[bool, float, float]] = [(False, 0.0, 0.0)] * len(a)
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
            out[k] = (r >= settings.min_reuse, out[k][1], r)
    return out


def fresh_story_id(index: StoryIndex, wanted: str) -> str:
    """A story id not in use: the founding article's id, suffixed if a live story already has it."""
    candidate, n = wanted, 1
    while index.members(candidate):
        n += 1
        candidate = f"{wanted}~{n}"
    return candidate


def make_decider(index: StoryIndex, settings: Settings):
    """The ``decide`` callback :meth:`StoryIndex.ingest` calls with the candidates it found."""

    def decide(entry: Entry, sigs: dict[str, Signature], stories: dict[str, str],
               verdicts: dict[str, tuple[bool, float, float]] | None = None) -> Assignment:
        ids = sorted(sigs)
        if verdicts is None:
            verdicts = verify_many(entry.signature, [sigs[c] for c in ids], settings)
        else:  # an index that verified a whole batch of pairs at once (verify_pairs) passes them in
            verdicts = [verdicts[c] for c in ids]
        links = [(cid, round(cos, 4), round(r, 4)) for cid, (ok, cos, r) in zip(ids, verdicts) if ok]
        linked = sorted({stories[c] for c, _, _ in links if c in stories})
        if not linked:
            return Assignment(entry.id, fresh_story_id(index, entry.id), "new", links=links)
        story = linked[0]
        merged = linked[1:]
        return Assignment(entry.id, story, "merged" if merged else "joined", merged=merged, links=links)

    # without candidates this decider always starts a story named after the article (when no story has
    # that name): an index may then store the article without calling it (the Redis index does, in one round trip)
    decide.alone_is_new = True  # type: ignore[attr-defined]
    # its answer depends only on its arguments and on whether a story is named after the article: an index
    # may decide ahead, on the candidates it expects, and have the server write it only if those are the
    # candidates (the Redis index's bucket copy, redis_mirror)
    decide.decides_ahead = True  # type: ignore[attr-defined]
    # an index that ingests a batch can verify all its candidate pairs in one go and pass the verdicts in
    decide.verify_pairs = lambda a, b: verify_pairs(a, b, settings)  # type: ignore[attr-defined]
    return decide


def _same_content(a: Entry, b: Entry) -> bool:
    return (
        a.text == b.text
        and a.title == b.title
        and a.source == b.source
        and a.published == b.published
        and a.url == b.url
    )


def assign(index: StoryIndex, entry: Entry, settings: Settings) -> Assignment:
    """Put one article into its story.  Idempotent by article id.

    The same article again changes nothing (``unchanged``); a new version of
    a known id replaces the old one (``replaced``), re-splitting the old
    story if the old version was what held it together.
    """
    if index.ingest_checks_stored:  # the index answers unchanged / replaced itself, without an extra read
        return index.ingest(entry, make_decider(index, settings))
    replaced = False
    if entry.id in index:
        old = index.entries([entry.id]).get(entry.id)
        if old is not None and _same_content(old, entry):
            story = index.story_of([entry.id]).get(entry.id, "")
            return Assignment(entry.id, story, "unchanged")
        remove(index, entry.id, settings)
        replaced = True
    result = index.ingest(entry, make_decider(index, settings))
    if replaced:
        result.action = "replaced"
    return result


def components(ids: list[str], index: StoryIndex, settings: Settings) -> list[list[str]]:
    """Connected components of the link graph restricted to ``ids``.

    The pairs verified are the ones LSH makes candidates: members that share
    a band value.  They are found here from the members' signatures (one
    read for all of them) instead of by asking the index for each member's
    candidates, which on a shared index took a round trip per member, and
    all of them are verified in one batch (a pair's verdict does not depend
    on its batch).  The window test is verification's own.  Bands are
    compared by their raw values, as the Redis index keys its buckets; the
    in-process index mixes a band of several rows into 32 bits, so with
    ``rows`` > 1 it could also pair two members whose mixes collide (about
    one chance in 2**32 per band).
    """
    pos = {a: i for i, a in enumerate(ids)}
    parent = list(range(len(ids)))

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    sigs = index.signatures(ids)
    buckets: dict[tuple[int, bytes], list[int]] = {}
    for a in ids:
        sig = sigs.get(a)
        if sig is not None:
            for band, value in enumerate(band_hashes(sig.minhash, settings.bands, settings.rows)):
                buckets.setdefault((band, value), []).append(pos[a])
    pairs = sorted({(i, j) for members in buckets.values() for n, i in enumerate(members) for j in members[n + 1:]})
    verdicts = verify_pairs([sigs[ids[i]] for i, _ in pairs], [sigs[ids[j]] for _, j in pairs], settings)
    for (i, j), (linked, _, _) in zip(pairs, verdicts):
        if linked:
            ri, rj = find(i), find(j)
            if ri != rj:
                parent[max(ri, rj)] = min(ri, rj)
    groups: dict[int, list[str]] = {}
    for a in ids:
        groups.setdefault(find(pos[a]), []).append(a)
    return sorted(groups.values(), key=lambda g: (-len(g), min(g)))


RESPLIT_ATTEMPTS = 10  # optimistic re-splits of a story before the last one is written unconditionally


def remove(index: StoryIndex, article_id: str, settings: Settings) -> tuple[Entry | None, list[str]]:
    """Delete an article and re-split its story if it was a bridge.

    Returns the removed entry and the ids of the stories that now hold the
    old story's remaining articles (the largest part keeps the old id).
    """
    story = index.story_of([article_id]).get(article_id)
    entry = index.delete(article_id)
    if entry is None or story is None:
        return entry, []
    return entry, resplit(index, story, settings)


def resplit(index: StoryIndex, story: str, settings: Settings) -> list[str]:
    """Split ``story`` into its connected parts (after one of its articles was deleted); returns the
    stories that now hold its articles (the largest part keeps the id), [] when it is gone.

    Read, split, and write only if the story did not change meanwhile (another process may have ingested
    an article into it); otherwise read and split again, after a short pause.  A story that keeps changing
    is finally split from the last read whatever happened since (what a single writer would do).
    """
    for attempt in range(RESPLIT_ATTEMPTS):
        rest, version = index.story_snapshot(story)
        if not rest:
            return []
        parts = components(rest, index, settings)
        named = [(fresh_story_id(index, min(part)), part) for part in parts[1:]]
        last = attempt == RESPLIT_ATTEMPTS - 1
        if index.resplit(story, None if last else version, named):
            return [story] + [sid for sid, _ in named]
        time.sleep(min(0.1, 0.002 * 2**attempt))
    raise AssertionError("unreachable: the last attempt writes unconditionally")


def finish_splits(index: StoryIndex, settings: Settings) -> list[str]:
    """Re-split the stories whose re-split a stopped process left unwritten (``index.pending_splits``):
    the delete and the re-split are two steps, and a crash or lost connection between them would leave
    a story held together by an article that is gone.  Run when a shared index is opened and before each
    retention pass.  Returns the stories it re-split."""
    done = []
    for story in index.pending_splits():
        resplit(index, story, settings)
        done.append(story)
    return done


__all__ = ["verify", "verify_many", "verify_pairs", "assign", "remove", "resplit", "finish_splits", "components",
           "make_decider"]
