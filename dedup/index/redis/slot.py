"""The shared story index in Redis: many workers, one set of stories.

Layout: see :mod:`dedup.index.redis_keys` (and ``docs/redis.md``).  Records
are compact bytes (:mod:`dedup.index.codec`), never pickle.  Every write
that touches several keys is one Lua script (:mod:`dedup.index.lua_scripts`),
so a crash or a lost connection never leaves half an article behind.

Ingesting one article takes at most two round trips: one script returns the
candidates (handles and stories; ids and signatures come from a client cache
keyed by handle) and whether the id is stored, the decision runs here in
Python, and a second script writes, re-checking first that the buckets and
the candidates' stories are still what the decision saw when anything was
written in between.  An article without candidates is stored by the first
script: one round trip.  So is an article whose candidates the client's copy
of recent buckets (:mod:`dedup.index.redis_mirror`) predicts: the decision
on them goes with the first script, which writes it only if they are the
candidates it finds.  :meth:`RedisIndex.ingest_many` reads and writes a
chunk of articles in two round trips.  If another worker changed the
candidates in between, the ingest starts over.  Ingests are therefore
serializable, and because stories are the connected components of an
order-independent link graph, any number of workers end with the partition
one process would produce.

Story membership and the story list (the part that touches no bucket) are
in :mod:`dedup.index.redis_stories`.
"""

from __future__ import annotations

import json
import random
import secrets
import threading
import time
from typing import Any, Callable, Iterable, NamedTuple, TypeVar

import numpy as np
import redis
from redis.cluster import RedisCluster
from redis.exceptions import AuthenticationError, RedisClusterException
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from ...clustering import Seen, decide_one
from ...records import Assignment, DedupError, Entry, Signature
from ...settings import Settings
from ...urls import mask_url
from ..base import StoryIndex
from .codec import CODEC_VERSION, decode_entry, decode_signatures, encode_entry, record_id
from .scripts import SLOT as redis_lua
from .slot_bulk import MAX_INGEST_ATTEMPTS, ingest_in_order
from .errors import (AccessDenied, IndexMismatch, IndexUnavailable, RetryTransient, check_eviction, guarded,
                           permanent_hint, refused, retries_within)
from .retention import expire, starts_pass
from .connection import DirectScripts
from .keys import LAYOUT_VERSION, check_id, key
from .mirror import BucketMirror
from .stories import RedisStories, text_of

CLUSTER_SCHEME = "redis+cluster://"

SIG_CACHE_SIZE = 100_000  # signatures kept by handle (~3 kB each in memory)
# articles per DELETE_MANY call: a delete is ~0.2-0.5 ms of server time (its buckets, sentence counts and
# story), so a call holds other clients up for tens of milliseconds at most
DELETE_CHUNK = 64


T = TypeVar("T")


class Found(NamedTuple):
    """FIND's answer for one article."""

    stored: bool  # the id is already stored
    buckets: bytes  # the values of the article's buckets as FIND read them, handed back to INGEST
    version: bytes  # the namespace's write version when FIND ran
    own: list[str]  # members of a story named after the article
    cands: dict[bytes, str]  # candidate handle -> its story ('' if none)


# what INGEST needs per article: entry, record, bucket fields, decision, candidate handle -> story
# assumed, write version and bucket values seen by FIND
Decided = tuple[Entry, bytes, bytes, Assignment, dict[bytes, str], bytes, bytes]


def first_handle() -> int:
    """Where a new epoch's handles start (see redis_lua.CLAIM): random, leaving 2^31 handles to give out."""
    return secrets.randbelow(2**31)


class RedisIndex(RedisStories, StoryIndex):
    """A :class:`StoryIndex` whose state lives in one Redis database under ``namespace``."""

    # the key layout, part of the namespace's fingerprint: "slot" keeps an index in one cluster slot,
    # "spread" (redis_spread.SpreadIndex) gives the buckets of each band group a slot of its own
    layout = "slot"

    def __init__(
        self,
        settings: Settings,
        *,
        url: str,
        namespace: str = "dedup",
        retries: int | None = None,
        socket_timeout: float = 10.0,
    ) -> None:
        # ':' would let one namespace's keys fall under another's prefix ('a' vs 'a:b')
        # '{' '}' would break the hash tag that keeps an index in one cluster slot
        if not namespace or any(c.isspace() or c in ":*?[]{}" for c in namespace):
            raise ValueError(f"namespace {namespace!r} must be non-empty, without spaces or any of : * ? [ ] {{ }}")
        self.settings = settings
        self.url = url
        self.namespace = namespace
        # capped exponential backoff for settings.redis_retry_s seconds: rides out a restart or a
        # failover, but not a refused password or an untrusted certificate, which no retry cures
        self._reconnect = ExponentialBackoff(cap=2.0, base=0.05)  # a cluster's too (guarded)
        self._retries = retries_within(settings.redis_retry_s, self._reconnect) if retries is None else retries
        retry = RetryTransient(self._reconnect, self._retries)
        self._r: Any
        try:
            if url.startswith(CLUSTER_SCHEME):
                # every key carries the {namespace} hash tag, so one index lives in one slot
                self._r = RedisCluster.from_url(
                    "redis://" + url[len(CLUSTER_SCHEME):], retry=retry,
                    socket_timeout=socket_timeout, socket_connect_timeout=5.0,
                )
            else:
                self._r = redis.Redis.from_url(
                    url,
                    retry=retry,
                    retry_on_error=[RedisConnectionError, RedisTimeoutError],
                    socket_timeout=socket_timeout,
                    socket_connect_timeout=5.0,
                    health_check_interval=30,
                )
        except (ValueError, RedisClusterException) as exc:
            raise IndexUnavailable(f"bad or unreachable Redis URL {mask_url(url)}: {exc}") from exc
        except (RedisConnectionError, RedisTimeoutError) as exc:
            raise IndexUnavailable(
                f"cannot connect to Redis at {mask_url(url)}: {exc}; start redis-server or fix --redis"
            ) from exc
        self._scripts = {name: self._r.register_script(getattr(redis_lua, name)) for name in redis_lua.SCRIPTS}
        self._claim_script = self._r.register_script(redis_lua.CLAIM)
        self._meta_key = self._k("meta")
        self._epoch = ""  # the namespace's epoch as this client knows it ('': none yet), see _claim
        self._guarded = threading.local()  # depth of guarded calls, see guarded
        self._direct: DirectScripts | None = None
        self._versions: tuple[tuple[Any, ...], list[tuple[str, int]]] | None = None  # see story_versions
        self._sig_cache: dict[bytes, tuple[str, Signature]] = {}  # handle -> (id, signature)
        self._field_template: np.ndarray | None = None  # see _fields
        # the buckets of recently written and read articles, to decide before reading (see ingest); the
        # spread layout has an ingest of its own, which does not use it
        self._mirror = BucketMirror(settings.redis_mirror if self.layout == "slot" else 0, 2 + 4 * settings.rows)
        self._newest_day_seen: int | None = None  # retention runs when a newer day arrives
        try:
            # before the claim writes anything
            check_eviction(self._r, url, settings.redis_allow_eviction)
            self._claim()
        except (RedisConnectionError, RedisTimeoutError) as exc:
            self._r.close()
            hint = permanent_hint(exc) or "start redis-server or fix --redis (rediss:// if the server speaks TLS)"
            error = AccessDenied if isinstance(exc, AuthenticationError) else IndexUnavailable
            raise error(f"cannot connect to Redis at {mask_url(url)}: {exc}; {hint}") from exc
        except redis.ResponseError as exc:
            core = refused(self, exc)  # (reads INFO for the message: before closing)
            self._r.close()
            if core is None:
                raise
            raise core from None
        except Exception:
            self._r.close()
            raise

    # -- helpers ------------------------------------------------------------
    def _k(self, kind: str, *parts: object) -> str:
        return key(self.namespace, kind, *parts)

    def _fixed_args(self) -> list[Any]:
        """What every story-slot script call starts with: ARGV[1] is the namespace and the epoch this
        client knows (see redis_keys), then bands and rows."""
        return [f"{self.namespace} {self._epoch}", self.settings.bands, self.settings.rows]

    def _run(self, name: str, *args: Any) -> Any:
        if self._direct is not None:
            ok, reply = self._direct.call(name, args)
            if ok:
                return reply
        return self._scripts[name](keys=[self._meta_key], args=[*self._fixed_args(), *args])

    def _load_scripts(self) -> None:
        """Load every script into the server's cache (pipelined calls cannot fall back on NOSCRIPT)."""
        for script in self._scripts.values():
            self._r.script_load(script.script)

    def _layout_id(self) -> str:
        return LAYOUT_VERSION if self.layout == "slot" else f"{LAYOUT_VERSION}-{self.layout}"

    def _claim(self) -> None:
        """Claim the namespace for these settings, or refuse one built with others, and take its epoch.

        The first client to find no ``{ns}:meta`` writes it with the settings' fingerprint and a random
        epoch (one script: atomic); the others read both.  Run on open, and again when a script refused
        the epoch this client sent (see guarded): the namespace emptied meanwhile, its meta key went with
        the last article, and handles, versions and the clock started again.  A new epoch voids what
        this client cached about the old one (_forget)."""
        fp = json.dumps({**self.settings.fingerprint(), "codec": CODEC_VERSION, "layout": self._layout_id()},
                        sort_keys=True)
        stored, epoch = self._claim_script(keys=[self._meta_key], args=[fp, secrets.token_hex(8), first_handle()])
        if text_of(stored) != fp:
            raise IndexMismatch(
                f"namespace {self.namespace!r} at {mask_url(self.url)} was built with signature settings "
                f"{text_of(stored)}, not {fp}: use those settings, pick another --namespace, or delete the "
                f"namespace with those settings (dedup drop --namespace {self.namespace} --yes) and re-ingest"
            )
        if text_of(epoch) != self._epoch:
            self._epoch = text_of(epoch)
            self._forget()

    def _wired(self) -> bool:
        """Whether script calls go over the index's own connection (see redis_wire): on a single server, in the
        slot layout (a cluster keeps redis-py, and so does the spread layout, which has wires of its own)."""
        return not isinstance(self._r, RedisCluster) and self.layout == "slot"

    def _forget(self) -> None:
        """Drop everything cached about the namespace's previous epoch, and send the new one from now on."""
        self._versions = None
        self._sig_cache.clear()
        self._mirror.clear()
        self._newest_day_seen = None
        if self._direct is not None:
            self._direct.close()
        self._direct = None if not self._wired() else DirectScripts(
            self._r, {name: sc.sha for name, sc in self._scripts.items()},
            [self._meta_key, *self._fixed_args()], spin_us=self.settings.redis_spin_us)
        if self._direct is not None:
            # MAINTAIN is only ever posted (see _upkeep), and a posted call has no redis-py to fall back on
            # to load its script: load it now (and again when a posted one found none, a restarted server)
            self._r.script_load(self._scripts["MAINTAIN"].script)

    # -- articles -----------------------------------------------------------
    @guarded
    def put(self, entry: Entry) -> None:
        check_id(entry.id)
        self._run("PUT", entry.id, self._record(entry))

    @guarded
    def delete(self, article_id: str) -> Entry | None:
        found = self._run("DELETE", article_id)
        if not found:
            return None
        return decode_entry(found[1], self._k("a", text_of(found[0])), self.settings)

    @guarded
    def delete_many(self, article_ids: list[str]) -> int:
        """Delete these articles, DELETE_CHUNK to a script call; how many were stored.  The stories they
        leave are not re-split here: each owes it (``pending_splits``), and :func:`dedup.stories.finish_splits`
        then re-splits each once, however many of its articles went (retention's way, see redis_retention)."""
        done = 0
        for start in range(0, len(article_ids), DELETE_CHUNK):
            done += int(self._run("DELETE_MANY", *article_ids[start:start + DELETE_CHUNK]))
        return done

    def _record(self, entry: Entry) -> bytes:
        """The stored record of an entry (features kept only with ``store_features``, see codec)."""
        return encode_entry(entry, keep_features=self.settings.store_features)

    def _records(self, ids: Iterable[str]) -> dict[str, tuple[str, bytes]]:
        """The stored ones among ``ids``: id -> (the record's key, for error messages; the record)."""
        ids = list(dict.fromkeys(ids))
        if not ids:
            return {}
        found = self._run("RECORDS", *ids)
        return {i: (self._k("a", text_of(f[0])), f[1]) for i, f in zip(ids, found) if f}

    @guarded
    def entries(self, ids: Iterable[str]) -> dict[str, Entry]:
        return {i: decode_entry(b, k, self.settings) for i, (k, b) in self._records(ids).items()}

    @guarded
    def signatures(self, ids: Iterable[str]) -> dict[str, Signature]:
        """By handle, from the client's cache where it has them (see _known): a re-split reads the
        signatures of a whole story, mostly articles this client wrote or read lately, and a record
        stored without features would be signed again from its text."""
        handles = self._handles(list(dict.fromkeys(ids)))
        known = self._known(set(handles.values()))
        return {i: known[h][1] for i, h in handles.items() if h in known}

    @guarded
    def __contains__(self, article_id: object) -> bool:
        return isinstance(article_id, str) and bool(self._handles([article_id]))

    @guarded
    def _handles(self, ids: list[str]) -> dict[str, bytes]:
        """The 4-byte handles of the stored ones among ``ids`` (the id table is sharded: read by script)."""
        if not ids:
            return {}
        return {i: int(h).to_bytes(4, "little") for i, h in zip(ids, self._run("HANDLES", *ids)) if h}

    @guarded
    def __len__(self) -> int:
        return int(self._r.get(self._k("n")) or 0)

    # -- candidates -----------------------------------------------------------
    # ingest_many pipelines its chunks of 64 (redis_bulk): the longer the batch, the fewer pipeline restarts
    ingest_batch = 1024

    def _day_arg(self, signature: Signature) -> str:
        return "" if signature.day is None else str(int(signature.day))

    def _fields(self, signature: Signature) -> bytes:
        """The bucket fields of a signature, back to back (u16 band + the band's raw value each), as the
        scripts name them: sent instead of the minhash, so a script cuts them out instead of building them."""
        bands, rows = self.settings.bands, self.settings.rows
        if self._field_template is None:
            self._field_template = np.zeros(bands, dtype=[("band", "<u2"), ("value", "<u4", (rows,))])
            self._field_template["band"] = np.arange(bands)
        out = self._field_template.copy()
        out["value"] = signature.minhash[:bands * rows].reshape(bands, rows)
        return out.tobytes()

    @guarded
    def candidates(self, signature: Signature) -> set[str]:
        found = self._run(
            "FIND", self._fields(signature), self._day_arg(signature),
            self.settings.window_days, "", 0,
        )
        return {text_of(i) for i in found}

    # -- stories --------------------------------------------------------------
    @guarded
    def story_of(self, ids: Iterable[str]) -> dict[str, str]:
        ids = list(dict.fromkeys(ids))
        if not ids:
            return {}
        values = self._run("STORY_OF", *ids)
        return {i: text_of(v) for i, v in zip(ids, values) if v}

    # -- boilerplate evidence ---------------------------------------------------
    @guarded
    def sentence_counts(self, hashes: Iterable[int]) -> list[int]:
        fields = [int(h).to_bytes(4, "little") for h in hashes]
        if not fields:
            return []
        return [int(v) for v in self._run("SENT_COUNTS", *fields)]

    # -- lifecycle ---------------------------------------------------------------
    def flush(self) -> None:
        """Write what this client holds back: in this layout, wait for the splits it left to the server
        (_upkeep) to be done (the spread layout clears the todo entries it finished, which it otherwise
        sends with its next commit)."""
        if self._direct is not None:
            self._direct.settle()

    def close(self) -> None:
        if self._direct is not None:
            self._direct.close()
        self._r.close()

    # -- the compound step ----------------------------------------------------------
    def _parse_find(self, reply: list[Any]) -> Found:
        """FIND's mode-2 answer (see redis_lua.FIND)."""
        n_own = int(reply[3])
        rest = reply[4 + n_own:]
        return Found(stored=bool(int(reply[0])), buckets=reply[1], version=reply[2],
                     own=sorted(text_of(m) for m in reply[4:4 + n_own]),
                     cands={rest[j]: text_of(rest[j + 1]) for j in range(0, len(rest), 2)})

    def _remember(self, handle: bytes, entry: Entry) -> None:
        if len(self._sig_cache) >= SIG_CACHE_SIZE:
            self._sig_cache.clear()
            self._mirror.clear()  # it guesses only with cached signatures
        self._sig_cache[handle] = (entry.id, entry.signature)  # our own writes are the likeliest next candidates

    def _guess(self, entry: Entry, keys: list[bytes]) -> tuple[Assignment, dict[bytes, str]] | None:
        """The decision on the candidates the copy expects FIND to answer, with them (handle -> story);
        None when the copy declines (see BucketMirror.expected).  An empty expectation is a guess too: a
        new story named after the article."""
        cache = self._sig_cache
        expected = self._mirror.expected(keys, entry.signature.day, self.settings.window_days, cache)
        if expected is None:
            return None
        sigs = {cache[h][0]: cache[h][1] for h in expected}
        stories = {cache[h][0]: s for h, s in expected.items() if s}
        # FIND writes the decision only if no story is named after the article: decide as if none is
        return decide_one(entry, Seen(sigs=sigs, stories=stories), self.settings, self.story_taken), expected

    def _blobs(self, handles: list[bytes]) -> dict[bytes, tuple[str, bytes]]:
        """The records of these handles (absent ones left out), each with the key it was read from."""
        keys = [self._k("a", int.from_bytes(h, "little")) for h in handles]
        return {h: (k, blob) for h, k, blob in zip(handles, keys, self._r.mget(keys)) if blob is not None}

    def _known(self, handles: set[bytes]) -> dict[bytes, tuple[str, Signature]]:
        """Id and signature of stored handles, from the cache or one MGET for the missing ones.

        A handle's record never changes (a new version of an article gets a
        new handle, and a new epoch drops the cache: see _claim), so cached
        entries are never stale; the cache saves
        reading the same record again and again for articles in popular
        buckets and, for records stored without features (codec), signing
        their text again: a worker signs another worker's article once.
        FIND answers handles, not ids.
        """
        cache = self._sig_cache
        missing = [h for h in handles if h not in cache]
        if missing:
            if len(cache) + len(missing) > SIG_CACHE_SIZE:
                cache.clear()
            got = [(h, k, blob) for h, (k, blob) in self._blobs(missing).items()]
            # records stored without features are signed again here, in one batch (see codec)
            sigs = decode_signatures([blob for _, _, blob in got], [k for _, k, _ in got], self.settings)
            for (h, k, blob), sig in zip(got, sigs):
                cache[h] = (record_id(blob, k), sig)
        return {h: cache[h] for h in handles if h in cache}

    @staticmethod
    def _candidates_of(found: Found, known: dict[bytes, tuple[str, Signature]]
                       ) -> tuple[dict[str, Signature], dict[str, str]]:
        """The decider's view of FIND's candidates: id -> signature, id -> story.

        A candidate deleted since the read is left out: the decision goes
        without it and INGEST's re-check sends us back to read again.
        """
        sigs: dict[str, Signature] = {}
        stories: dict[str, str] = {}
        for h, story in found.cands.items():
            if h in known:
                cid, sig = known[h]
                sigs[cid] = sig
                if story:
                    stories[cid] = story
        return sigs, stories

    @guarded
    def ingest(self, entry: Entry) -> Assignment | None:
        """Read (one script), decide in Python, write with a re-check (one script); retry on conflict.

        An article that is already stored comes back ``unchanged`` (same
        content) or is replaced (``replaced``), as :func:`dedup.stories.assign`
        does: FIND's answer says whether the id is stored, so that check costs
        no round trip.  An article without candidates is stored by FIND itself
        (a new story named after it): one round trip.
        And when the client's copy of the buckets (:mod:`~dedup.index.redis_mirror`)
        says which candidates FIND will find, the decision on them goes with
        FIND, which writes it if they are the ones it finds: one round trip too.
        """
        check_id(entry.id)
        blob = self._record(entry)
        sig = entry.signature
        # FIND may write (modes 3 and 4); on a connection of our own its writes leave their splits to
        # MAINTAIN (see _upkeep)
        defer = "d" if self._direct is not None else ""
        fields = self._fields(sig)
        keys = self._mirror.keys(fields)
        args = [fields, self._day_arg(sig), self.settings.window_days, entry.id, f"3{defer}", blob]
        for attempt in range(MAX_INGEST_ATTEMPTS):
            guess = self._guess(entry, keys)
            if guess is None:
                reply = self._run("FIND", *args)
            else:
                guessed, expected = guess
                reply = self._run("FIND", *args[:4], f"4{defer}", blob, guessed.story, int(guessed.action == "new"),
                                  len(guessed.merged), *guessed.merged, len(expected),
                                  *(x for h, s in expected.items() for x in (h, s)))
                self._mirror.scored(int(reply[0]) == 2)
            if int(reply[0]) == 2:  # FIND stored it: as guessed, or alone (no candidate, no story named after it)
                assignment = guessed if guess is not None else Assignment(entry.id, entry.id, "new")
                self._upkeep(reply[2:])
                self._remember(reply[1], entry)
                self._mirror.written(reply[1], keys, sig.day, assignment.story, assignment.merged)
            else:
                found = self._parse_find(reply)
                status = "exists"
                if not found.stored:
                    known = self._known(set(found.cands))
                    self._mirror.learn(keys, sig.day, self.settings.window_days, found.cands,
                                       lambda h: (self._mirror.keys(self._fields(known[h][1])), known[h][1].day)
                                       if h in known else None)
                    sigs, stories = self._candidates_of(found, known)
                    assignment = decide_one(entry, Seen(sigs=sigs, stories=stories, own=found.own), self.settings,
                                            self.story_taken)
                    _, status, _, handles = self._write([(entry, blob, fields, assignment, found.cands,
                                                          found.version, found.buckets)])
                    if status == "ok":  # (bulk loads do not feed the copy: it cost them 8%)
                        self._mirror.written(handles[0], keys, sig.day, assignment.story, assignment.merged)
                if status == "exists":
                    return None
                if status != "ok":
                    self._backoff(attempt)
                    continue
            if entry.signature.day is not None:
                self._retain(entry.signature.day)
            return assignment
        raise DedupError(
            f"article {entry.id!r}: gave up after {MAX_INGEST_ATTEMPTS} conflicting concurrent updates "
            f"in namespace {self.namespace!r}; retry the article"
        )

    def _upkeep(self, families: list[bytes]) -> None:
        """Have the server split the shards FIND's write left over their load (redis_lua.MAINTAIN), while
        this client goes on: the call's answer is read before the next one.  Not sent when the connection
        is busy; the next write to those families owes the splits again."""
        direct = self._direct
        if families and direct is not None:
            if direct.posted_noscript:  # the last one found no script (a restarted server): load them again
                direct.posted_noscript = False
                self._load_scripts()
            direct.post("MAINTAIN", families)

    @staticmethod
    def _backoff(attempt: int) -> None:
        """Conflict: another worker changed our candidates; wait a little so we do not collide again."""
        time.sleep(random.uniform(0, min(0.05, 0.001 * (attempt + 1))))

    def _ingest_args(self, decided: list[Decided]) -> list[Any]:
        """INGEST's arguments for decided articles, in order."""
        args: list[Any] = [self.settings.window_days, len(decided)]
        for entry, blob, fields, assignment, expected, version, buckets in decided:
            args += [entry.id, blob, fields, assignment.story, int(assignment.action == "new"),
                     len(assignment.merged), *assignment.merged, version, buckets, len(expected)]
            for h, story in expected.items():
                args += [h, story]
        return args

    def _written(self, decided: list[Decided], reply: list[Any]) -> tuple[int, str, bytes, list[bytes]]:
        """INGEST's answer: (how many were written, status, write version before the call, their handles)."""
        done, status, v0, *handles = reply
        for (entry, *_), h in zip(decided, handles):
            self._remember(h, entry)
        return int(done), text_of(status), v0, handles

    def _write(self, decided: list[Decided]) -> tuple[int, str, bytes, list[bytes]]:
        """Run INGEST for decided articles in order; returns its answer as :meth:`_written` reads it."""
        return self._written(decided, self._run("INGEST", *self._ingest_args(decided)))

    @guarded
    def ingest_many(
        self, entries: list[Entry], fallback: Callable[[Entry], Assignment] | None = None, chunk: int = 64,
    ) -> list[Assignment | DedupError]:
        """Ingest a batch in input order with one round trip per chunk instead of two per article.

        The candidate reads of a whole chunk are one FIND call (plus an MGET
        for signatures not yet cached); the decisions run here one after
        another, each seeing the earlier articles of the chunk (they may be
        its candidates, and merges rename stories); one INGEST call then
        writes the chunk, re-checking each article against what its decision
        saw.  The next chunk's FIND goes out with it, and the next chunk is
        decided while the server writes (:mod:`dedup.index.redis_bulk`).  On
        a conflict the written prefix stays and the rest is read and decided
        again, so the outcome is the one-at-a-time outcome.  Articles already stored (or repeated
        in the batch) go through ``fallback`` (``dedup.stories.assign``:
        unchanged / replaced) at their place in the order.  With retention on,
        the batch goes in runs, each ending at an article whose newer day
        starts a retention pass, which runs right after it
        (:func:`~dedup.index.redis_bulk.in_retention_runs`).  A batch (or run)
        of one article (a worker's batch on a quiet stream) goes through
        :meth:`ingest`, which may store it in one round trip where a chunk
        takes two.
        Errors are returned in place of the assignment, so a batch goes on.
        """
        return ingest_in_order(self, entries, fallback or self.ingest_or_fail, chunk)

    def _retain(self, day: int) -> None:
        """Apply ``retain_days`` once per newer publication day this worker sees (cheap otherwise)."""
        if self.settings.retain_days <= 0 or not starts_pass(day, self._newest_day_seen):
            return
        self._newest_day_seen = day
        self.expire()

    @guarded
    def expire(self) -> list[str]:
        """Delete articles published more than ``retain_days`` before the newest stored one.

        Relative to the newest *stored* day, not the wall clock, so replaying
        an archive keeps a sliding window instead of deleting everything.
        They go in batches (:meth:`delete_many`), then each story they held
        together is re-split once (:func:`dedup.stories.finish_splits`), not
        once per article it lost: a day's worth of deletes then holds the
        first ingest of the next day up for milliseconds, not seconds.
        Undated articles are never expired.
        """
        return expire(self)

    @guarded
    def drop(self) -> int:
        """Delete every key of the namespace, in either layout (``{ns}:...`` and the spread layout's band
        slots ``{ns:b<group>...}:...``; a namespace holds no ':' so no other index matches); returns how
        many.  Other clients of the namespace find it empty on their next call, as after its last delete."""
        deleted = 0
        for pattern in (f"{{{self.namespace}}}:*", f"{{{self.namespace}:b*}}:*"):
            batch: list[bytes] = []
            for k in self._r.scan_iter(match=pattern, count=1000):
                batch.append(k)
                if len(batch) >= 500:
                    deleted += self._unlink(batch)
                    batch = []
            if batch:
                deleted += self._unlink(batch)
        self._epoch = ""
        self._forget()
        return deleted

    def _unlink(self, keys: list[bytes]) -> int:
        pipe = self._r.pipeline(transaction=False)  # on a cluster the keys are in many slots: one each
        for k in keys:
            pipe.unlink(k)
        return sum(int(n) for n in pipe.execute())
