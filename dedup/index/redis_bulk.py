"""Bulk ingest of the Redis index: a chunk of articles in two round trips (see RedisIndex.ingest_many).

The client decides the chunk's articles in input order, each seeing the
earlier ones of the chunk as candidates (when they share a band and are
within the window) and seeing the stories they created or merged; one
INGEST call then writes the chunk.  Split from :mod:`dedup.index.redis` to
keep modules short.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

from ..records import Assignment, DedupError, Entry
from .base import Decide
from .codec import encode_entry

if TYPE_CHECKING:
    from .redis import Decided, RedisIndex


def _within(a: int | None, b: int | None, window: int) -> bool:
    """The exact publication-window test (undated articles match everything)."""
    return a is None or b is None or abs(a - b) <= window


def ingest_chunk(index: "RedisIndex", entries: list[Entry], todo: list[int], decide: Decide,
                 single: Callable[[Entry], Assignment], out: list[Any]) -> None:
    """Read, decide and write the articles ``todo`` (indexes into ``entries``), filling ``out``."""
    from .redis import MAX_INGEST_ATTEMPTS  # late import: redis imports this module

    bands, w = index.settings.bands, index.settings.rows * 4
    window = index.settings.window_days
    blobs = {i: encode_entry(entries[i], keep_features=index.settings.store_features) for i in todo}
    field_bytes = {i: index._fields(entries[i].signature) for i in todo}  # sent to FIND, then to INGEST
    attempt = 0
    while todo:
        # one script call reads the whole chunk: one round trip, and one slot on a cluster
        args: list[Any] = ["many", window, 2]
        for i in todo:
            args += [field_bytes[i], index._day_arg(entries[i].signature), entries[i].id]
        founds = [index._parse_find(reply) for reply in index._run("FIND", *args)]
        known = index._known({h for f in founds for h in f.cands})
        # The loop below decides articles up to the first one already stored or repeated in the chunk
        # (then the rest is read again): only those get their candidates verified here.
        reach, ids_so_far = len(todo), set()
        for k, (i, found) in enumerate(zip(todo, founds)):
            if found.stored or entries[i].id in ids_so_far:
                reach = k
                break
            ids_so_far.add(entries[i].id)
        stored_cands = [index._candidates_of(found, known) for found in founds[:reach]]
        # Their stored candidates verified in one batch when the decider can; the candidates an
        # article finds among the chunk's earlier articles (few) are verified as they turn up.
        verify_pairs = getattr(decide, "verify_pairs", None)
        verdicts: list[dict[str, tuple[bool, float, float]]] = [{} for _ in stored_cands]
        if verify_pairs is not None:
            flat = [(k, c, sig) for k, (sigs, _) in enumerate(stored_cands) for c, sig in sigs.items()]
            for (k, c, _), v in zip(flat, verify_pairs([entries[todo[k]].signature for k, _, _ in flat],
                                                        [sig for _, _, sig in flat])):
                verdicts[k][c] = v
        decided: list[Decided] = []
        chunk_ids: dict[str, int] = {}  # ids decided in this chunk -> position in `decided`
        chunk_story: dict[str, str] = {}  # their stories, as decided
        renamed: dict[str, str] = {}  # stories merged away in this chunk -> where they went
        band_map: dict[bytes, list[str]] = {}  # band field -> chunk ids in it

        def resolve(story: str) -> str:
            while story in renamed:
                story = renamed[story]
            return story

        stop = len(todo)
        for k, (i, found) in enumerate(zip(todo, founds)):
            e = entries[i]
            if found.stored or e.id in chunk_ids:
                stop = k  # write what is decided, then handle this one on its own
                break
            # past `reach` only when an earlier copy of the id failed to decide: read and verify it here
            batched = k < reach
            sigs, stories = stored_cands[k] if batched else index._candidates_of(found, known)
            stories = {c: resolve(s) for c, s in stories.items()}
            expected = {h: resolve(s) for h, s in found.cands.items()}
            packed = field_bytes[i]
            fw = 2 + w
            fields = [packed[b * fw:(b + 1) * fw] for b in range(bands)]
            seen: set[str] = set()
            in_chunk: dict[str, Any] = {}
            for f in fields:
                for c in band_map.get(f, ()):
                    if c not in seen:
                        seen.add(c)
                        other = decided[chunk_ids[c]][0].signature
                        if _within(e.signature.day, other.day, window):
                            sigs[c] = other
                            in_chunk[c] = other
                            stories[c] = resolve(chunk_story[c])
            given = None
            if verify_pairs is not None and batched:
                given = verdicts[k]
                if in_chunk:
                    given.update(zip(in_chunk, verify_pairs([e.signature] * len(in_chunk), list(in_chunk.values()))))
                # only the linked candidates go to the decider: the others cannot change its decision
                sigs = {c: sig for c, sig in sigs.items() if given[c][0]}
                stories = {c: s for c, s in stories.items() if c in sigs}
            own_now = [] if e.id in renamed else list(found.own)
            own_now += [c for c in chunk_ids if resolve(chunk_story[c]) == e.id]
            index._members_hint = {e.id: sorted(own_now)}
            try:
                assignment = decide(e, sigs, stories) if given is None else decide(e, sigs, stories, given)
            except DedupError as exc:
                out[i] = exc
                continue
            finally:
                index._members_hint = {}
            for old in assignment.merged:
                renamed[old] = assignment.story
            chunk_ids[e.id] = len(decided)
            chunk_story[e.id] = assignment.story
            for f in fields:
                band_map.setdefault(f, []).append(e.id)
            decided.append((e, blobs[i], packed, assignment, expected, found.version, found.buckets))
            out[i] = assignment
        written_idx = [i for i in todo[:stop] if isinstance(out[i], Assignment)]
        done, status = index._write(decided) if decided else (0, "ok")
        for i in written_idx[done:]:
            out[i] = None  # not written: decide again
        if status == "ok" and stop < len(todo):
            i = todo[stop]
            try:
                out[i] = single(entries[i])
            except DedupError as exc:
                out[i] = exc
            todo = todo[stop + 1:]
            continue
        todo = [i for i in todo if out[i] is None]
        if status != "ok":
            index._backoff(attempt)
            attempt += 1
            if attempt >= MAX_INGEST_ATTEMPTS:
                for i in todo:
                    out[i] = DedupError(f"article {entries[i].id!r}: gave up after {attempt} conflicting "
                                        f"concurrent updates in namespace {index.namespace!r}; retry it")
                return
