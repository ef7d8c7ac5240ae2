"""The shared story index in Redis: many workers, one set of stories.

Layout: see :mod:`dedup.index.redis_keys` (and ``docs/redis.md``).  Records
are compact bytes (:mod:`dedup.index.codec`), never pickle.  Every write
that touches several keys is one Lua script (:mod:`dedup.index.redis_lua`),
so a crash or a lost connection never leaves half an article behind.

Ingesting one article takes two round trips: one script returns the
candidates with their signatures and stories, the decision runs here in
Python, and a second script re-checks that the candidates and their stories
are still what the decision saw before writing.  If another worker changed
them in between, the ingest starts over.  Ingests are therefore
serializable, and because stories are the connected components of an
order-independent link graph, any number of workers end with the partition
one process would produce.
"""

from __future__ import annotations

import functools
import json
import random
import time
from typing import Any, Callable, Iterable, TypeVar

import redis
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry

from ..records import Assignment, DedupError, Entry, Signature
from ..settings import Settings
from . import mask_url, redis_lua
from .base import Decide, StoryIndex
from .codec import CODEC_VERSION, decode_entry, decode_signature, encode_entry
from .redis_keys import check_id, key

MAX_INGEST_ATTEMPTS = 200


class IndexUnavailable(DedupError):
    """Redis cannot be reached (after retries); the message names the URL, password masked."""


class IndexMismatch(DedupError):
    """The namespace was built with other signature settings, so its buckets would never match."""


T = TypeVar("T")


def _guard(fn: Callable[..., T]) -> Callable[..., T]:
    """Turn a connection failure that outlived the retries into an error naming the server."""

    @functools.wraps(fn)
    def wrapper(self: "RedisIndex", *args: Any, **kwargs: Any) -> T:
        try:
            return fn(self, *args, **kwargs)
        except (RedisConnectionError, RedisTimeoutError) as exc:
            raise IndexUnavailable(
                f"lost the connection to Redis at {mask_url(self.url)} (namespace {self.namespace!r}): {exc}; "
                "check that redis-server is running and reachable"
            ) from exc

    return wrapper


def _s(value: bytes | str) -> str:
    return value.decode("utf-8", errors="replace") if isinstance(value, bytes) else value


class RedisIndex(StoryIndex):
    """A :class:`StoryIndex` whose state lives in one Redis database under ``namespace``."""

    def __init__(
        self,
        settings: Settings,
        *,
        url: str,
        namespace: str = "dedup",
        retries: int = 6,
        socket_timeout: float = 10.0,
    ) -> None:
        # ':' would let one namespace's keys fall under another's prefix ('a' vs 'a:b')
        if not namespace or any(c.isspace() or c in ":*?[]" for c in namespace):
            raise ValueError(f"namespace {namespace!r} must be non-empty, without spaces or any of : * ? [ ]")
        self.settings = settings
        self.url = url
        self.namespace = namespace
        # capped exponential backoff: rides out a restart or failover of a few seconds
        retry = Retry(ExponentialBackoff(cap=2.0, base=0.05), retries)
        try:
            self._r = redis.Redis.from_url(
                url,
                retry=retry,
                retry_on_error=[RedisConnectionError, RedisTimeoutError],
                socket_timeout=socket_timeout,
                socket_connect_timeout=5.0,
                health_check_interval=30,
            )
        except ValueError as exc:
            raise IndexUnavailable(f"bad Redis URL {mask_url(url)}: {exc}") from exc
        self._scripts = {
            name: self._r.register_script(getattr(redis_lua, name))
            for name in ("PUT", "DELETE", "SET_STORY", "FIND", "INGEST")
        }
        self._members_hint: dict[str, list[str]] = {}
        self._newest_day_seen: int | None = None  # retention runs when a newer day arrives
        try:
            self._check_meta()
        except (RedisConnectionError, RedisTimeoutError) as exc:
            self._r.close()
            raise IndexUnavailable(
                f"cannot connect to Redis at {mask_url(url)}: {exc}; start redis-server or fix --redis"
            ) from exc
        except Exception:
            self._r.close()
            raise

    # -- helpers ------------------------------------------------------------
    def _k(self, kind: str, *parts: object) -> str:
        return key(self.namespace, kind, *parts)

    def _run(self, name: str, *args: Any) -> Any:
        s = self.settings
        return self._scripts[name](args=[self.namespace, s.bands, s.rows, *args])

    def _check_meta(self) -> None:
        """Claim an empty namespace for these settings, or refuse one built with others."""
        fp = json.dumps({**self.settings.fingerprint(), "codec": CODEC_VERSION}, sort_keys=True)
        pipe = self._r.pipeline(transaction=True)
        pipe.hsetnx(self._k("meta"), "fingerprint", fp)
        pipe.hget(self._k("meta"), "fingerprint")
        _, stored = pipe.execute()
        if _s(stored) != fp:
            raise IndexMismatch(
                f"namespace {self.namespace!r} at {mask_url(self.url)} was built with signature settings "
                f"{_s(stored)}, not {fp}: use those settings, pick another --namespace, or delete the "
                f"namespace (redis-cli --scan --pattern '{self.namespace}:*' | xargs redis-cli del) and re-ingest"
            )

    def _fields(self, entry: Entry) -> list[bytes | str]:
        flat: list[bytes | str] = []
        for f, v in encode_entry(entry).items():
            flat += [f, v]
        return flat

    # -- articles -----------------------------------------------------------
    @_guard
    def put(self, entry: Entry) -> None:
        check_id(entry.id)
        fv = self._fields(entry)
        self._run("PUT", entry.id, len(fv), *fv)

    @_guard
    def delete(self, article_id: str) -> Entry | None:
        flat = self._run("DELETE", article_id)
        if not flat:
            return None
        fields = {_s(flat[i]): flat[i + 1] for i in range(0, len(flat), 2)}
        return decode_entry(article_id, fields, self._k("a", article_id), self.settings.num_perm)

    def _records(self, ids: Iterable[str], names: tuple[str, ...]) -> dict[str, dict[str, bytes | None]]:
        ids = list(dict.fromkeys(ids))
        pipe = self._r.pipeline(transaction=False)
        for i in ids:
            pipe.hmget(self._k("a", i), names)
        out = {}
        for i, values in zip(ids, pipe.execute()):
            if values[0] is not None:
                out[i] = dict(zip(names, values))
        return out

    @_guard
    def entries(self, ids: Iterable[str]) -> dict[str, Entry]:
        names = ("t", "x", "s", "p", "u", "h", "m", "ti", "tw", "sh", "d")
        return {
            i: decode_entry(i, f, self._k("a", i), self.settings.num_perm)
            for i, f in self._records(ids, names).items()
        }

    @_guard
    def signatures(self, ids: Iterable[str]) -> dict[str, Signature]:
        names = ("m", "ti", "tw", "sh", "d")
        return {
            i: decode_signature(f, self._k("a", i), self.settings.num_perm)
            for i, f in self._records(ids, names).items()
        }

    @_guard
    def __contains__(self, article_id: object) -> bool:
        return isinstance(article_id, str) and bool(self._r.exists(self._k("a", article_id)))

    @_guard
    def __len__(self) -> int:
        return int(self._r.get(self._k("n")) or 0)

    # -- candidates -----------------------------------------------------------
    def _day_arg(self, signature: Signature) -> str:
        return "" if signature.day is None else str(int(signature.day))

    @_guard
    def candidates(self, signature: Signature) -> set[str]:
        found = self._run(
            "FIND", signature.minhash.astype("<u4").tobytes(), self._day_arg(signature),
            self.settings.window_days, "", 0,
        )
        return {_s(i) for i in found}

    # -- stories --------------------------------------------------------------
    @_guard
    def story_of(self, ids: Iterable[str]) -> dict[str, str]:
        ids = list(dict.fromkeys(ids))
        if not ids:
            return {}
        values = self._r.hmget(self._k("story_of"), ids)
        return {i: _s(v) for i, v in zip(ids, values) if v is not None}

    @_guard
    def members(self, story_id: str) -> list[str]:
        if story_id in self._members_hint:
            return list(self._members_hint[story_id])
        return sorted(_s(m) for m in self._r.smembers(self._k("s", story_id)))

    @_guard
    def set_story(self, story_id: str, ids: Iterable[str]) -> None:
        ids = list(ids)
        if ids:
            self._run("SET_STORY", story_id, *ids)

    @_guard
    def story_ids(self) -> list[str]:
        return [_s(s) for s in self._r.zrevrange(self._k("stories"), 0, -1)]

    # -- boilerplate evidence ---------------------------------------------------
    @_guard
    def sentence_counts(self, hashes: Iterable[int]) -> list[int]:
        hashes = [str(int(h)) for h in hashes]
        if not hashes:
            return []
        return [int(v or 0) for v in self._r.hmget(self._k("sent"), hashes)]

    # -- lifecycle ---------------------------------------------------------------
    def close(self) -> None:
        self._r.close()

    # -- the compound step ----------------------------------------------------------
    @_guard
    def ingest(self, entry: Entry, decide: Decide) -> Assignment:
        """Read (one script), decide in Python, write with a re-check (one script); retry on conflict."""
        check_id(entry.id)
        sig = entry.signature
        minhash = sig.minhash.astype("<u4").tobytes()
        day = self._day_arg(sig)
        window = self.settings.window_days
        fv = self._fields(entry)
        num_perm = self.settings.num_perm
        for attempt in range(MAX_INGEST_ATTEMPTS):
            reply = self._run("FIND", minhash, day, window, entry.id, 1)
            n_own = int(reply[0])
            own = sorted(_s(m) for m in reply[1 : 1 + n_own])
            rest = reply[1 + n_own :]
            sigs: dict[str, Signature] = {}
            stories: dict[str, str] = {}
            for j in range(0, len(rest), 7):
                cid = _s(rest[j])
                fields = dict(zip(("d", "m", "ti", "tw", "sh"), rest[j + 1 : j + 6]))
                sigs[cid] = decode_signature(fields, self._k("a", cid), num_perm)
                if rest[j + 6]:
                    stories[cid] = _s(rest[j + 6])
            # the decider asks whether a story named after the article exists: answer from the read
            self._members_hint = {entry.id: own}
            try:
                assignment = decide(entry, sigs, stories)
            finally:
                self._members_hint = {}
            is_new = assignment.action == "new"
            cand_args: list[str] = []
            for cid in sigs:
                cand_args += [cid, stories.get(cid, "")]
            status = _s(self._run(
                "INGEST", entry.id, minhash, day, window, assignment.story, int(is_new),
                len(fv), *fv, len(assignment.merged), *assignment.merged, len(sigs), *cand_args,
            ))
            if status == "ok":
                if sig.day is not None:
                    self._retain(sig.day)
                return assignment
            if status == "exists":
                done = self._already_there(entry)
                if done is not None:
                    return done
                continue
            # conflict: another worker changed our candidates; back off a little and redo
            time.sleep(random.uniform(0, min(0.05, 0.001 * (attempt + 1))))
        raise DedupError(
            f"article {entry.id!r}: gave up after {MAX_INGEST_ATTEMPTS} conflicting concurrent updates "
            f"in namespace {self.namespace!r}; retry the article"
        )

    def _retain(self, day: int) -> None:
        """Apply ``retain_days`` once per newer publication day this worker sees (cheap otherwise)."""
        if self.settings.retain_days <= 0 or (self._newest_day_seen is not None and day <= self._newest_day_seen):
            return
        self._newest_day_seen = day
        self.expire()

    @_guard
    def expire(self) -> list[str]:
        """Delete articles published more than ``retain_days`` before the newest stored one.

        Relative to the newest *stored* day, not the wall clock, so replaying
        an archive keeps a sliding window instead of deleting everything.
        Each goes through :func:`dedup.stories.remove`, which re-splits the
        stories it held together.  Undated articles are never expired.
        """
        from ..stories import remove  # late import: stories imports the index package

        if self.settings.retain_days <= 0:
            return []
        newest = self._r.zrevrange(self._k("days"), 0, 0, withscores=True)
        if not newest:
            return []
        cutoff = int(newest[0][1]) - self.settings.retain_days
        old = [_s(i) for i in self._r.zrangebyscore(self._k("days"), "-inf", f"({cutoff}")]
        for aid in old:
            remove(self, aid, self.settings)
        return old

    def _already_there(self, entry: Entry) -> Assignment | None:
        """Another worker stored this id while we decided: same content is done, a new version replaces it."""
        from ..stories import _same_content, remove  # late import: stories imports the index package

        old = self.entries([entry.id]).get(entry.id)
        if old is None:
            return None
        if _same_content(old, entry):
            return Assignment(entry.id, self.story_of([entry.id]).get(entry.id, ""), "unchanged")
        remove(self, entry.id, self.settings)
        return None
