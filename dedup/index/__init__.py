"""Story indexes: one interface, an in-process and a Redis implementation, one factory."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

from ..settings import Settings
from ..stories import finish_splits
from .base import StoryIndex
from .memory import MemoryIndex

__all__ = ["StoryIndex", "MemoryIndex", "open_index", "mask_url"]


def mask_url(url: str) -> str:
    """``url`` with any password replaced by ``***``: URLs end up in messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:***@{host}"))


def open_index(settings: Settings, url: str | None = None, namespace: str = "dedup") -> StoryIndex:
    """The index for ``url``: in-process when it is empty, Redis for ``redis://`` / ``rediss://`` /
    ``unix://``, Redis Cluster for ``redis+cluster://host:port`` (any node; the others are discovered),
    in the key layout ``settings.redis_layout`` chooses (see :mod:`dedup.index.redis_spread`)."""
    if not url:
        ignored = settings.shared_only()
        if ignored:
            flags = ", ".join("--" + name.replace("_", "-") for name in ignored)
            raise ValueError(f"{flags} (or DEDUP_{ignored[0].upper()}...) applies only to the shared (Redis) index: "
                             "give --redis URL, or leave it at its default")
        return MemoryIndex(settings)
    if url.startswith(("redis://", "rediss://", "unix://", "redis+cluster://")):
        from .redis import RedisIndex  # imported lazily: the CLI's default path needs no server
        from .redis_spread import SpreadIndex

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
