"""Finding the articles retention must delete, without keeping a list of dated ids.

Only the number of articles per day is kept (``{ns}:days``, a few hundred
fields), not a list of dated ids (~125 bytes per article), so finding the
old articles reads the handle table ``i`` shard by shard and the records of
the old handles.  It runs when retention has something to delete, once per
new publication day (:meth:`dedup.index.redis.RedisIndex.expire`).  The
table is sharded by handle range, and the handles of the namespace's epoch
run from the one after ``seq0`` (where its claim started them) to ``seq``, so
those are the shards to read; the emptied ones of deleted articles are gone
and cost a lookup each (1,000 per round trip).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

from .codec import record_id
from .redis_keys import key
from .redis_lua_lib import INFO_SPAN, NODAY

if TYPE_CHECKING:
    from .redis import RedisIndex

BATCH = 1_000  # shards (or records) per pipelined round trip


def expire(index: "RedisIndex") -> list[str]:
    """``RedisIndex.expire``: delete what is older than ``retain_days`` before the newest stored day, each
    through :func:`dedup.stories.remove` (which re-splits the stories it held together)."""
    from ..stories import finish_splits, remove  # late import: stories imports the index package

    retain = index.settings.retain_days
    if retain <= 0:
        return []
    finish_splits(index, index.settings)  # a long-running worker also picks up what a crashed one left
    days = sorted(int(d) for d in index._r.hkeys(key(index.namespace, "days")))
    if not days or days[0] >= days[-1] - retain:
        return []
    old = dated_before(index._r, index.namespace, days[-1] - retain, index._blobs)
    for aid in old:
        remove(index, aid, index.settings)
    return old


def dated_before(r: Any, namespace: str, cutoff: int,
                 blobs: Callable[[list[bytes]], dict[bytes, tuple[str, bytes]]]) -> list[str]:
    """Ids of the articles of ``namespace`` published before day ``cutoff``, oldest first (undated never).
    ``blobs`` reads records by handle (``RedisIndex._blobs``: the layouts keep them in different slots)."""
    first, last = r.hmget(key(namespace, "meta"), "seq0", "seq")
    if first is None or last is None:  # nothing stored
        return []
    lo, hi = (int(first) + 1) // INFO_SPAN, int(last) // INFO_SPAN + 1
    old: list[tuple[int, bytes]] = []
    for start in range(lo, hi, BATCH):
        pipe = r.pipeline(transaction=False)
        for n in range(start, min(hi, start + BATCH)):
            pipe.hgetall(key(namespace, "i", n))
        for fields in pipe.execute():
            for h, v in fields.items():
                day = int.from_bytes(v[:4], "little", signed=True)
                if day != NODAY and day < cutoff:
                    old.append((day, h))
    old.sort()
    ids: list[tuple[int, str]] = []
    for start in range(0, len(old), BATCH):
        part = old[start:start + BATCH]
        got = blobs([h for _, h in part])
        ids += [(day, record_id(got[h][1], got[h][0])) for day, h in part if h in got]
    return [aid for _, aid in sorted(ids)]
