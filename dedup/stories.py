"""An article's life in an index: ingest (unchanged, replaced or new), delete, and the re-split after a delete.

The decision where a fresh article goes is :mod:`dedup.clustering`'s; this
module handles what comes around it: an id that is stored already, and a
story that lost the article holding it together (re-split into the
connected components of its remaining members' links).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from .clustering import fresh_story_id, verify_pairs
from .events import relink_after_delete, relink_parts
from .records import Assignment, DedupError, Entry
from .settings import Settings
from .signature import band_hashes

if TYPE_CHECKING:  # the indexes call these functions; they only need an index's methods
    from .index.base import StoryIndex


def same_content(a: Entry, b: Entry) -> bool:
    return (
        a.text == b.text
        and a.title == b.title
        and a.source == b.source
        and a.published == b.published
        and a.url == b.url
    )


REPLACE_ATTEMPTS = 10  # a stored id found again after its old version was removed (another writer)


def assign(index: StoryIndex, entry: Entry, settings: Settings) -> Assignment:
    """Put one article into its story.  Idempotent by article id.

    The same article again changes nothing (``unchanged``); a new version of
    a known id replaces the old one (``replaced``), re-splitting the old
    story if the old version was what held it together.  The index says
    whether the id is stored as it ingests (on Redis, in the same read).
    """
    replaced = False
    for _ in range(REPLACE_ATTEMPTS):
        result = index.ingest(entry)
        if result is not None:
            if replaced:
                result.action = "replaced"
            return result
        old = index.entries([entry.id]).get(entry.id)
        if old is None:  # deleted meanwhile: ingest it again
            continue
        if same_content(old, entry):
            return Assignment(entry.id, index.story_of([entry.id]).get(entry.id, ""), "unchanged")
        remove(index, entry.id, settings)
        replaced = True
    raise DedupError(f"article {entry.id!r}: other writers kept storing it meanwhile; retry the article")


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
    With ``settings.events``, the event pairs the delete makes candidates
    again are decided (:func:`dedup.events.relink_after_delete`).
    """
    story = index.story_of([article_id]).get(article_id)
    keys = index.event_keys([article_id]).get(article_id, []) if settings.events else []
    entry = index.delete(article_id)
    if entry is None:
        return entry, []
    parts = resplit(index, story, settings) if story is not None else []
    if keys:  # a word the article held may propose pairs again (dedup.events)
        relink_after_delete(index, [keys], settings)
    return entry, parts


def resplit(index: StoryIndex, story: str, settings: Settings) -> list[str]:
    """Split ``story`` into its connected parts (after one of its articles was deleted); returns the
    stories that now hold its articles (the largest part keeps the id), [] when it is gone.

    Read, split, and write only if the story did not change meanwhile (another process may have ingested
    an article into it); otherwise read and split again, after a short pause.  A story that keeps changing
    is finally split from the last read whatever happened since (what a single writer would do).
    With ``settings.events``, the event pairs among the parts are decided (:func:`dedup.events.relink_parts`).
    """
    for attempt in range(RESPLIT_ATTEMPTS):
        rest, version = index.story_snapshot(story)
        if not rest:
            return []
        parts = components(rest, index, settings)
        named = [(fresh_story_id(min(part), index.members(min(part)), index.story_taken), part) for part in parts[1:]]
        last = attempt == RESPLIT_ATTEMPTS - 1
        if index.resplit(story, None if last else version, named):
            if named and settings.events:  # articles of one story, never decided as a pair, are apart now
                relink_parts(index, rest, settings)
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


__all__ = ["assign", "remove", "resplit", "finish_splits", "components", "same_content"]
