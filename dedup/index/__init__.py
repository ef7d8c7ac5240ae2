"""Story indexes: one interface, an in-process and a Redis implementation, one factory."""

from __future__ import annotations

from ..settings import Settings
from .base import StoryIndex
from .memory import MemoryIndex

__all__ = ["StoryIndex", "MemoryIndex", "open_index"]


def open_index(settings: Settings, url: str | None = None, namespace: str = "dedup") -> StoryIndex:
    """The index for ``url``: in-process when it is empty, Redis for ``redis://`` / ``rediss://``."""
    if not url:
        return MemoryIndex(settings)
    if url.startswith(("redis://", "rediss://", "unix://")):
        from .redis import RedisIndex  # imported lazily: the CLI's default path needs no server

        return RedisIndex(settings, url=url, namespace=namespace)
    raise ValueError(f"unsupported index URL {url!r}: use redis://host:port/db, rediss://... or leave it empty")
