"""The shared story index in Redis, in two key layouts: "slot" (:mod:`.slot`, one cluster slot per index)
and "spread" (:mod:`.spread`, the buckets in a slot per band group).  ``docs/redis.md`` is the design."""

from .slot import RedisIndex
from .spread import SpreadIndex

__all__ = ["RedisIndex", "SpreadIndex"]
