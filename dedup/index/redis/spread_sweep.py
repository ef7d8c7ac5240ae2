"""Crash recovery of the spread layout: finishing what a client left between its commit and its buckets.

A spread ingest commits an article in the story slot (noting ``handle +
bucket fields`` in the ``todo`` zset) and only then adds it to its buckets in
the band-group slots.  A client that dies in between leaves an entry behind;
so does one that dies deleting.  :func:`finish_todo` (``SpreadIndex.sweep``,
run on open and once a minute by any process that keeps ingesting) finishes
the entries old enough to belong to a dead client:

- an article that is no longer committed leaves its buckets, and its record
  leaves its group;
- a committed one is added to its buckets again and linked with every
  article they hold within the window, as its own ingest would have done.

It is safe to run by anyone at any time: adding an article to a bucket
twice changes nothing, links are idempotent, and an entry noted again since
it was read belongs to its new owner (clearing compares the score).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .keys import day_tag, entries_in, tag_within

if TYPE_CHECKING:
    from .spread import SpreadIndex


def finish_todo(index: "SpreadIndex", age_s: float, limit: int) -> int:
    """Finish up to ``limit`` todo entries at least ``age_s`` seconds old; returns how many."""

    found = index._story("S_TODO", int(age_s * 1e6), limit)
    if not found:
        return 0
    pairs = [(found[j], found[j + 1]) for j in range(0, len(found), 2)]
    handles = [m[:4] for m, _ in pairs]
    _, _, infos = index._lookup("", handles)
    for (member, score), hb, info in zip(pairs, handles, infos):
        fields = index._split(member[4:])
        if not info:  # deleted (or never committed): out of its buckets, its record gone
            index._fanout(index._calls("del", [(b, f, hb) for b, f in enumerate(fields)])
                          + index._record_calls("rdel", {hb: b""}))
        else:
            record = index._blobs([hb]).get(hb)
            own = index._known({hb}).get(hb)
            day = index._info_day(info)
            t = day_tag(day).to_bytes(2, "little")
            # the record to its group (from the story slot's copy, which clearing the entry drops)
            calls = index._calls("add", [(b, f, hb + t) for b, f in enumerate(fields)])
            replies = index._fanout(calls + (index._record_calls("rput", {hb: record[1]}) if record else []))
            before = [v for answers in replies[:len(calls)] for v in answers]
            others = {h for v in before for h, tg in entries_in(v).items()
                      if h != hb and tag_within(tg, day, index.settings.window_days)}
            if own is not None and others:  # what it should have been linked with: all of them
                index._verify_and_link(own[0], own[1], list(others), False)
        index._done.append((member, score))
    index.flush()
    return len(pairs)
