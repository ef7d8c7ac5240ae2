"""Story indexes: one interface, an in-process and a Redis implementation, one factory."""

from __future__ import annotations

from ..settings import Settings
from ..stories import finish_splits
from .base import StoryIndex
from .memory import MemoryIndex
from .redis import RedisIndex, SpreadIndex

__all__ = ["StoryIndex", "MemoryIndex", "open_index"]


def open_index(settings: Settings, url: str | None = None, namespace: str = "dedup") -> StoryIndex:
    """The index for ``url``: in-process when it is empty, Redis for ``redis://`` / ``rediss://`` /
    ``unix://``, Redis Cluster for ``redis+cluster://host:port`` (any node; the others are discovered),
    in the key layout ``settings.redis_layout`` chooses (see :mod:`dedup.index.redis.spread`)."""
    if not url:
        ignored = settings.shared_only()
        if ignored:
            flags = ", ".join("--" + name.replace("_", "-") for name in ignored)
            raise ValueError(f"{flags} (or DEDUP_{ignored[0].upper()}...) applies only to the shared (Redis) index: "
                             "give --redis URL, or leave it at its default")
        return MemoryIndex(settings)
    if url.startswith(("redis://", "rediss://", "unix://", "redis+cluster://")):
        layout = settings.redis_layout
        if layout == "auto":
            layout = "spread" if url.startswith("redis+cluster://") else "slot"
        cls = SpreadIndex if layout == "spread" else RedisIndex
        index = cls(settings, url=url, namespace=namespace)
        try:
            finish_splits(index, settings)  # what a process that stopped mid-delete left undone
        except BaseException:
            index.close()
            raise
        return index
    raise ValueError(f"unsupported index URL {url!r}: use redis://host:port/db, rediss://..., redis+cluster://host:port or leave it empty")
