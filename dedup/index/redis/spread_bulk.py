"""Bulk ingest of the spread layout (:meth:`SpreadIndex.ingest_many`): chunks of articles, each in four
round trips instead of three to four per article.

A chunk goes through the steps of :class:`~dedup.index.redis_spread.SpreadIndex.ingest` together:

1. the buckets of all its articles are read in one fan-out (one call per band group);
2. their candidates' stories (and whether each id is stored) in one pipelined lookup, and the
   candidates' signatures in one read;
3. the articles are decided here in input order, each also seeing the chunk's earlier articles as
   candidates (when they share a bucket and are within the window) and the stories they created or
   merged, so the decisions are the one-at-a-time decisions;
4. one commit writes them in order, re-checking each decision (candidates still in the stories it
   saw, a new story id still free); it stops at an id already stored (which then goes through
   ``single``: unchanged or replaced) or at a decision that no longer holds (the rest is read again);
5. one fan-out adds the committed articles to their buckets; entries there that neither the read nor
   the chunk explain were committed by another process meanwhile, and are verified and linked as in
   streaming.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

from ...clustering import Seen, plan_run
from ...records import Assignment, DedupError, Entry, Signature
from .keys import check_id, day_tag, entries_in, tag_within

if TYPE_CHECKING:
    from .spread import SpreadIndex

MAX_CONFLICTS = 5  # a chunk whose first article keeps conflicting goes one article at a time


def ingest_chunks(index: "SpreadIndex", entries: list[Entry], single: Callable[[Entry], Assignment], chunk: int) -> list[Assignment | DedupError]:
    out: list[Any] = [None] * len(entries)
    todo: list[int] = []
    for i, e in enumerate(entries):
        try:
            check_id(e.id)
        except DedupError as exc:
            out[i] = exc
            continue
        todo.append(i)
    pos, conflicts = 0, 0
    while pos < len(todo):
        part, ids = [], set()
        for i in todo[pos:pos + chunk]:
            if entries[i].id in ids:  # a repeated id waits for the next chunk, after its first copy
                break
            ids.add(entries[i].id)
            part.append(i)
        done, status = _chunk(index, entries, part, out)
        pos += done
        if status == "exists" or (status == "conflict" and done == 0 and conflicts >= MAX_CONFLICTS):
            i = todo[pos]
            try:
                out[i] = single(entries[i])
            except DedupError as exc:
                out[i] = exc
            pos += 1
            conflicts = 0
        elif status == "conflict":
            conflicts = conflicts + 1 if done == 0 else 0
            index._backoff(conflicts)
        else:
            conflicts = 0
    return [o if o is not None else DedupError("not ingested") for o in out]


def _chunk(index: "SpreadIndex", entries: list[Entry], part: list[int], out: list[Any]) -> tuple[int, str]:
    """Read, decide, commit and write the buckets of ``part``; returns (articles committed, status)."""

    window, nb = index.settings.window_days, index.settings.bands
    fields = {i: index._split(index._fields(entries[i].signature)) for i in part}
    values = index._bands("get", [(b, f, b"") for i in part for b, f in enumerate(fields[i])])
    seen: dict[int, dict[bytes, int]] = {}
    for k, i in enumerate(part):
        s: dict[bytes, int] = {}
        for v in values[k * nb:(k + 1) * nb]:
            for h, t in entries_in(v).items():
                s.setdefault(h, t)
        seen[i] = s
    near = {i: [h for h, t in seen[i].items() if tag_within(t, entries[i].signature.day, window)] for i in part}
    looked = index._lookup_many([(entries[i].id, near[i]) for i in part])
    infos = {h: info for i, (_, _, inf) in zip(part, looked) for h, info in zip(near[i], inf) if info}
    known = index._known(set(infos))

    run: list[Entry] = []
    seen_run: list[Seen] = []
    for i, (own_hb, own, _) in zip(part, looked):
        if own_hb is not None:
            break  # commit what is planned, then this one goes on its own
        sigs: dict[str, Signature] = {}
        stories: dict[str, str] = {}
        for h in near[i]:
            if h in infos and h in known:
                cid, sig = known[h]
                sigs[cid] = sig
                story = index._info_story(infos[h])
                if story:
                    stories[cid] = story
        run.append(entries[i])
        seen_run.append(Seen(sigs=sigs, stories=stories, own=own))
    stop = len(run)
    plan = plan_run(run, seen_run, index.settings, index.story_taken)
    decided: list[tuple[int, int, Assignment, list[Any]]] = []  # (position in part, entry, assignment, expected)
    for d in plan.decisions:
        i = part[d.at]
        expected = [x for h in near[i] if h in infos and h in known
                    for x in (h, d.resolve(index._info_story(infos[h])))]
        decided.append((d.at, i, d.assignment, expected))
    if not decided:
        return stop, ("exists" if stop < len(part) else "ok")

    args: list[Any] = [len(decided)]
    blobs = {i: index._record(entries[i]) for _, i, _, _ in decided}
    for _, i, assignment, expected in decided:
        e = entries[i]
        mode = "new" if assignment.action == "new" else "join"
        args += [e.id, blobs[i], b"".join(fields[i]), assignment.story, mode, len(assignment.merged),
                 *assignment.merged, len(expected) // 2, *expected]
    reply = index._story("S_COMMIT", *index._take_done(), *args)
    status, n = _text(reply[0]), int(reply[1])
    handles = reply[2:2 + n]
    tags, records = {}, {}
    for (_, i, _, _), hb in zip(decided, handles):
        index._remember(hb, entries[i])
        tags[hb] = day_tag(entries[i].signature.day)
        records[hb] = blobs[i]
    mine = dict.fromkeys(handles, 0)  # the chunk's own articles, which the decisions already saw
    with index._kept_on_failure():  # (the chunk's entries stay for the sweep: linking again is harmless)
        befores = index._apply(reply[2 + n:], tags, records)
        for (_, i, assignment, _), hb, before in zip(decided, handles, befores):
            out[i] = index._link_late(entries[i], hb, {**seen[i], **mine}, before, assignment)
    if n < len(decided):  # stopped at decided[n]: it and the rest are read and decided again
        for _, i, _, _ in decided[n:]:
            out[i] = None
        return decided[n][0], status
    return stop, ("exists" if stop < len(part) else "ok")


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
