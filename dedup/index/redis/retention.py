"""Finding the articles retention must delete, without keeping a list of dated ids.

Only the number of articles per day is kept (``{ns}:days``, a few hundred
fields), not a list of dated ids (~125 bytes per article), so finding the
old articles reads the handle table ``i`` shard by shard and the records of
the old handles.  It runs when retention has something to delete, once per
new publication day (:meth:`dedup.index.redis.RedisIndex.expire`).

The table is sharded by handle range, and handles only grow, so a feed
published roughly in order keeps its old articles in the low shards.  A
pass therefore reads upwards from a *floor* and stops as soon as it has
found as many old articles as ``{ns}:days`` counts: it reads the shards it
deletes from, and the few above them, not the whole table (round trips of
16, 32, ... shards, up to 1,000, so a pass that finds its articles in the
first shards reads few more).  After its
deletes went through it raises the floor (``ifloor`` in ``{ns}:meta``) to
the lowest shard it saw keeping an article, since every shard below held
only what it just deleted; the next pass starts there instead of at the
epoch's first handle (``seq0``), and shards emptied long ago are not read
again.  The floor only moves up, belongs to one epoch (it goes with the
meta hash, and a client that missed a new epoch does not write it), and
is a lower bound whatever other processes do meanwhile: they can only add
handles above ``seq`` or delete articles.  An article published long ago
but ingested late has a new, high handle, so it is found above the floor.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

from .codec import record_id
from .keys import key
from .scripts import INFO_SPAN, NODAY

BATCH = 1_000  # shards (or records) per pipelined round trip
FIRST_BATCH = 16  # shards read in a pass's first round trip; each next one reads twice as many, up to BATCH

# KEYS[1] = {ns}:meta, ARGV: the epoch the client knows, a shard.  Raises the retention floor of that epoch
# (never lowers it: two workers expiring at once each write a valid floor), and writes nothing when the
# namespace emptied or started a new epoch meanwhile (an HSET would leave a meta hash behind, or carry a
# floor into an epoch whose handles start elsewhere).
RAISE_FLOOR = r"""
if redis.call('HGET', KEYS[1], 'epoch') ~= ARGV[1] then return 0 end
if tonumber(redis.call('HGET', KEYS[1], 'ifloor') or '-1') >= tonumber(ARGV[2]) then return 0 end
redis.call('HSET', KEYS[1], 'ifloor', ARGV[2])
return 1
"""


@dataclasses.dataclass
class OldArticles:
    """What a retention pass found: the ids to delete, and the floor it may raise once they are gone."""

    ids: list[str]  # oldest first
    floor: int | None  # every handle shard below it holds only ``ids`` (None: do not move the floor)
    shards_read: int  # handle shards the pass read (what the floor and the early stop save)


def starts_pass(day: int | None, seen: int | None) -> bool:
    """Does ingesting an article of publication day ``day`` start a retention pass, for a client whose
    newest day seen so far is ``seen``?  Once per newer day (``RedisIndex._retain``); undated never."""
    return day is not None and (seen is None or day > seen)






def dated_before(r: Any, namespace: str, cutoff: int,
                 blobs: Callable[[list[bytes]], dict[bytes, tuple[str, bytes]]],
                 expect: int | None = None) -> OldArticles:
    """The articles of ``namespace`` published before day ``cutoff``, oldest first (undated never), read
    from the retention floor up; ``expect``: how many there are (``{ns}:days``), to stop when all are
    found (None: read to the last handle).  ``blobs`` reads records by handle (``RedisIndex._blobs``: the
    layouts keep them in different slots)."""
    first, last, floor = r.hmget(key(namespace, "meta"), "seq0", "seq", "ifloor")
    if first is None or last is None:  # nothing stored
        return OldArticles([], None, 0)
    lo, hi = (int(first) + 1) // INFO_SPAN, int(last) // INFO_SPAN + 1
    if floor is not None:
        lo = max(lo, int(floor))
    old: list[tuple[int, bytes, int]] = []  # day, handle, its shard
    keeps = None  # the lowest shard read that holds an article retention keeps
    read_to, size = lo, FIRST_BATCH
    while read_to < hi:
        shards = range(read_to, min(hi, read_to + size))
        size = min(2 * size, BATCH)
        pipe = r.pipeline(transaction=False)
        for n in shards:
            pipe.hgetall(key(namespace, "i", n))
        for n, fields in zip(shards, pipe.execute()):
            for h, v in fields.items():
                day = int.from_bytes(v[:4], "little", signed=True)
                if day != NODAY and day < cutoff:
                    old.append((day, h, n))
                elif keeps is None:
                    keeps = n
        read_to = shards.stop
        if expect is not None and len(old) >= expect:
            break
    old.sort()
    ids: list[tuple[int, str]] = []
    new_floor = keeps if keeps is not None else read_to
    for start in range(0, len(old), BATCH):
        part = old[start:start + BATCH]
        got = blobs([h for _, h, _ in part])
        ids += [(day, record_id(got[h][1], got[h][0])) for day, h, _ in part if h in got]
        # a handle without a record is not deleted by this pass: its shard must be read again
        new_floor = min([new_floor] + [n for _, h, n in part if h not in got])
    return OldArticles([aid for _, aid in sorted(ids)], new_floor if new_floor > lo else None, read_to - lo)
