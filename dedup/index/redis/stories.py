"""The story half of the Redis index: who is in which story, and the story list the dashboard pages through.

A mixin of :class:`dedup.index.redis.RedisIndex` (and so of the spread
layout), kept apart because it is the part of the index that does not touch
buckets: it reads and rewrites the story hashes ``s:<story>``, the
``stories`` zset and ``split``, the stories waiting for a re-split (see
:mod:`dedup.index.redis.keys`).
Every method runs under ``guarded``, so a lost server is retried and reported
the way the rest of the index reports it.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable

from .errors import guarded


def text_of(value: bytes | str) -> str:
    """Text of a Redis reply (ids and story ids are UTF-8; a stray byte must not stop a read)."""
    return value.decode("utf-8", errors="replace") if isinstance(value, bytes) else value


class RedisStories:
    """Story membership and story versions.  The index provides the client, the key builder, its scripts
    and the two caches below (set up in its ``__init__``, dropped in ``_forget``)."""

    _r: Any
    _k: Callable[..., str]
    _run: Callable[..., Any]
    _meta_key: str
    _versions: tuple[tuple[Any, ...], list[tuple[str, int]]] | None  # see story_versions

    @guarded
    def members(self, story_id: str) -> list[str]:
        return sorted(text_of(m) for m in self._r.hkeys(self._k("s", story_id)))

    @guarded
    def members_many(self, story_ids: Iterable[str]) -> dict[str, list[str]]:
        """One pipelined round trip of HKEYS for all stories instead of one round trip per story."""
        sids = list(dict.fromkeys(story_ids))
        if not sids:
            return {}
        pipe = self._r.pipeline(transaction=False)
        for sid in sids:
            pipe.hkeys(self._k("s", sid))
        out: dict[str, list[str]] = {}
        for sid, found in zip(sids, pipe.execute()):
            ids = sorted(text_of(m) for m in found)
            if ids:
                out[sid] = ids
        return out

    @guarded
    def story_versions(self, limit: int | None = None) -> list[tuple[str, int]]:
        """The ``stories`` zset's scores are the ``clock`` tick (a field of ``meta``) of each story's last change.

        Reading and parsing all 10k pairs costs ~100 ms in redis-py, so the
        whole list is kept and re-read only when ``(clock, epoch, n, ZCARD)``
        moved: every story change ticks the clock, a story that vanishes
        without a tick (its last article deleted) changes the article count
        and the number of stories, and the clock starts again only in a new
        epoch (see _claim).  A limited read is small and always fresh.
        """
        if limit is not None:
            if limit <= 0:
                return []
            pairs = self._r.zrevrange(self._k("stories"), 0, limit - 1, withscores=True)
            return [(text_of(sid), int(score)) for sid, score in pairs]
        pipe = self._r.pipeline(transaction=True)
        pipe.hmget(self._meta_key, "clock", "epoch")  # the clock starts again in a new epoch
        pipe.get(self._k("n"))
        pipe.zcard(self._k("stories"))
        token = tuple(tuple(v) if isinstance(v, list) else v for v in pipe.execute())
        if self._versions is None or self._versions[0] != token:
            pairs = self._r.zrevrange(self._k("stories"), 0, -1, withscores=True)
            # stored under the token read *before* the list: a change in between only causes a re-read
            self._versions = (token, [(text_of(sid), int(score)) for sid, score in pairs])
        return list(self._versions[1])

    @guarded
    def set_story(self, story_id: str, ids: Iterable[str]) -> None:
        ids = list(ids)
        if ids:
            self._run("SET_STORY", story_id, *ids)

    @guarded
    def story_snapshot(self, story_id: str) -> tuple[list[str], object]:
        """Members and version (the story's clock tick) in one script call: one consistent read."""
        version, *members = self._run("STORY_SNAPSHOT", story_id)
        return sorted(text_of(m) for m in members), text_of(version)

    @guarded
    def resplit(self, story_id: str, version: object, parts: list[tuple[str, list[str]]]) -> bool:
        """All parts in one script, written only if the story is still at ``version``."""
        args: list[str] = [story_id, "*" if version is None else str(version)]
        for sid, ids in parts:
            args += [sid, str(len(ids)), *ids]
        return int(self._run("RESPLIT", *args)) == 1

    @guarded
    def pending_splits(self) -> list[str]:
        return [text_of(s) for s in self._r.hkeys(self._k("split"))]

    @guarded
    def story_ids(self) -> list[str]:
        return [text_of(s) for s in self._r.zrevrange(self._k("stories"), 0, -1)]
