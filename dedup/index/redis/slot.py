"""The shared story index in Redis, slot layout: many workers, one set of stories, one cluster slot.

Layout: see :mod:`dedup.index.redis.keys` (and ``docs/redis.md``).  Records
are compact bytes (:mod:`dedup.index.redis.codec`), never pickle.  Every write
that touches several keys is one Lua script (:mod:`dedup.index.redis.scripts`),
so a crash or a lost connection never leaves half an article behind.

Ingesting one article takes at most two round trips: one script returns the
candidates (handles and stories; ids and signatures come from a client cache
keyed by handle) and whether the id is stored, the decision runs here in
Python, and a second script writes, re-checking first that the buckets and
the candidates' stories are still what the decision saw when anything was
written in between.  An article without candidates is stored by the first
script: one round trip.  So is an article whose candidates the client's copy
of recent buckets (:mod:`dedup.index.redis.mirror`) predicts: the decision
on them goes with the first script, which writes it only if they are the
candidates it finds.  :meth:`RedisIndex.ingest_many` reads and writes a
chunk of articles in two round trips.  If another worker changed the
candidates in between, the ingest starts over.  Ingests are therefore
serializable, and because stories are the connected components of an
order-independent link graph, any number of workers end with the partition
one process would produce.

Story membership and the story list (the part that touches no bucket) are
in :mod:`dedup.index.redis.stories`, event evidence in :mod:`dedup.index.redis.events`.
"""

from __future__ import annotations

import json
import secrets
import threading
from dataclasses import dataclass
from typing import Any, Callable, Iterable, NamedTuple

import numpy as np
import redis
from redis.cluster import RedisCluster
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from ...clustering import Overlay, Seen, decide_one, first_stop, plan_run
from ...events import relink_after_delete
from ...records import Assignment, DedupError, Entry, IndexMismatch, Signature
from ...settings import Settings
from ...stories import finish_splits
from ...urls import mask_url
from ..base import (CONFLICT, MAX_WRITE_ATTEMPTS, Conflict, StoryIndex, gave_up, pause_after_conflict,
                    retry_on_conflict)
from .codec import CODEC_VERSION, decode_entry, decode_signatures, encode_entry, record_id
from .scripts import SLOT as redis_lua
from .errors import check_eviction, guarded, refused
from .events import RedisEvents
from .retention import RAISE_FLOOR, OldArticles, dated_before, starts_pass
from .connection import DirectScripts, PipelineBroken, ScriptsMissing, cannot_connect, connect
from .keys import LAYOUT_VERSION, bucket_family, check_id, day_tag, key, period_entry, read_families
from .mirror import BucketMirror
from .stories import RedisStories, text_of

SIG_CACHE_SIZE = 100_000  # signatures kept by handle (~3 kB each in memory)
# articles per DELETE_MANY call: a delete is ~0.2-0.5 ms of server time (its buckets, sentence counts and
# story), so a call holds other clients up for tens of milliseconds at most
DELETE_CHUNK = 64


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


class RedisIndex(RedisStories, RedisEvents, StoryIndex):
    """A :class:`StoryIndex` whose state lives in one Redis database under ``namespace``."""

    # the key layout, part of the namespace's fingerprint: "slot" keeps an index in one cluster slot,
    # "spread" (spread.SpreadIndex) gives the buckets of each band group a slot of its own
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
        self._r: Any
        self._r, self._reconnect, self._retries = connect(url, settings.redis_retry_s, retries, socket_timeout)
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
            raise cannot_connect(url, exc) from exc
        except redis.ResponseError as exc:
            core = refused(self._r, url, namespace, exc)  # (reads INFO for the message: before closing)
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
        client knows (see keys.py), then bands and rows."""
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
        """Whether script calls go over the index's own connection (connection.DirectScripts): on a single
        server, in the slot layout (a cluster keeps redis-py, and so does the spread layout, which has wires of
        its own)."""
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
        then re-splits each once, however many of its articles went (retention's way, see retention.py)."""
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
    # ingest_many pipelines its chunks of 64 (_Bulk): the longer the batch, the fewer pipeline restarts
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
        And when the client's copy of the buckets (:mod:`~dedup.index.redis.mirror`)
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
        def attempt() -> Assignment | None | Conflict:
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
                    return CONFLICT
            if entry.signature.day is not None:
                self._retain(entry.signature.day)
            return assignment

        return retry_on_conflict(attempt, entry.id, f"namespace {self.namespace!r}")

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
        decided while the server writes (:class:`_Bulk`).  On
        a conflict the written prefix stays and the rest is read and decided
        again, so the outcome is the one-at-a-time outcome.  Articles already stored (or repeated
        in the batch) go through ``fallback`` (``dedup.stories.assign``:
        unchanged / replaced) at their place in the order.  With retention on,
        the batch goes in runs, each ending at an article whose newer day
        starts a retention pass, which runs right after it
        (:meth:`_in_retention_runs`).  A batch (or run)
        of one article (a worker's batch on a quiet stream) goes through
        :meth:`ingest`, which may store it in one round trip where a chunk
        takes two.
        Errors are returned in place of the assignment, so a batch goes on.
        """
        single = fallback or self.ingest_or_fail
        if self.settings.retain_days > 0:
            return self._in_retention_runs(entries, lambda run: _in_order(self, run, single, chunk))
        return _in_order(self, entries, single, chunk)

    def _retain(self, day: int) -> None:
        """Apply ``retain_days`` once per newer publication day this worker sees (cheap otherwise)."""
        if self.settings.retain_days <= 0 or not starts_pass(day, self._newest_day_seen):
            return
        self._newest_day_seen = day
        self.expire()

    def _in_retention_runs(self, entries: list[Entry],
                           ingest_run: Callable[[list[Entry]], list[Assignment | DedupError]]
                           ) -> list[Assignment | DedupError]:
        """A batch with retention on, with the one-at-a-time outcome.

        Ingesting one article runs a retention pass after writing it when its
        publication day is newer than any this client has seen.  So the batch
        goes in runs, each ending at such an article: no pass can delete
        between two articles of a run, which therefore goes in chunks
        (``ingest_run``), and the pass follows it, as it would follow that
        article.  A feed in publication order breaks a batch once per new day,
        not at every article.  The
        pass is skipped when that article failed (the next newer one starts
        it), and its error takes the article's place, as one at a time.
        """
        out: list[Assignment | DedupError] = []
        pos = 0
        while pos < len(entries):
            seen = self._newest_day_seen
            starter = next((i for i in range(pos, len(entries)) if starts_pass(entries[i].signature.day, seen)), None)
            end = len(entries) - 1 if starter is None else starter
            run = ingest_run(entries[pos:end + 1])
            day = entries[end].signature.day
            if starter is not None and day is not None and isinstance(run[-1], Assignment):
                try:
                    self._retain(day)
                except DedupError as exc:
                    run[-1] = exc
            out += run
            pos = end + 1
        return out

    @guarded
    def expire(self) -> list[str]:
        """Delete articles published more than ``retain_days`` before the newest stored one.

        Relative to the newest *stored* day, not the wall clock, so replaying
        an archive keeps a sliding window instead of deleting everything.
        They go in batches (:meth:`delete_many`), then each story they held
        together is re-split once (:func:`dedup.stories.finish_splits`), not
        once per article it lost: a day's worth of deletes then holds the
        first ingest of the next day up for milliseconds, not seconds.
        With events, the words the expired articles held that are back under
        the cap then propose their holders' pairs (:func:`dedup.events.relink_after_delete`).
        Undated articles are never expired.
        """
        retain = self.settings.retain_days
        if retain <= 0:
            return []
        finish_splits(self, self.settings)  # a long-running worker also picks up what a crashed one left
        counts = self.day_counts()
        if not counts or min(counts) >= max(counts) - retain:
            return []
        found = self.older_than(max(counts) - retain, counts)
        held = list(self.event_keys(found.ids).values()) if self.settings.events else []
        # every old article first, then one re-split per story they leave (the parts are the same as deleting
        # and re-splitting one article at a time: what was apart stays apart), not one per deleted article: a
        # story whose articles all expire is not split at all.  A stop in between leaves the re-splits owed
        # (pending_splits), for the next pass or the next process to open the index.
        self.delete_many(found.ids)
        finish_splits(self, self.settings)
        if held:  # a word the expired articles held may propose pairs again (dedup.events)
            relink_after_delete(self, held, self.settings)
        if found.floor is not None:  # only now: a pass that stopped half-way leaves the floor where it was
            self._r.eval(RAISE_FLOOR, 1, self._meta_key, self._epoch, found.floor)
        return found.ids

    @guarded
    def day_counts(self) -> dict[int, int]:
        """Stored articles per publication day (``{ns}:days``)."""
        return {int(d): int(n) for d, n in self._r.hgetall(self._k("days")).items()}

    @guarded
    def older_than(self, cutoff: int, counts: dict[int, int]) -> OldArticles:
        """The articles published before day ``cutoff`` (:func:`~dedup.index.redis.retention.dated_before`),
        stopping once it has found as many as ``counts`` (:meth:`day_counts`) holds before ``cutoff``."""
        return dated_before(self._r, self.namespace, cutoff, self._blobs,
                            expect=sum(n for d, n in counts.items() if d < cutoff))

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


def _with_digest(buckets: bytes, bands: int, handles: set[bytes]) -> bytes:
    """FIND's packed bucket values with ``handles`` added to the digest of the other periods' buckets
    that follows them (sorted 4-byte handles, as the Lua ``digest`` writes it)."""
    lens = np.frombuffer(buckets, dtype="<u4", count=bands)
    end = 4 * bands + int(lens[lens != 0xFFFFFFFF].sum())
    rest = buckets[end:]
    have = {rest[j:j + 4] for j in range(0, len(rest), 4)}
    return buckets[:end] + b"".join(sorted(have | handles))


@dataclass
class _Chunk:
    """A decided chunk, ready for INGEST."""

    decided: list[Decided]
    todo: list[int]  # the chunk's articles (indexes into entries), decided or not
    layer: Overlay  # what the chunk's plan adds, for the chunk planned after it
    # per decided article: the previous chunk's articles it saw as candidates -> their story as decided,
    # and its bands that hold articles of the previous chunk (band number -> their ids)
    prev_cands: list[dict[str, str]]
    prev_bands: list[list[tuple[int, list[str]]]]
    stop: int  # position in todo of an article to ingest on its own (stored or repeated id), or len(todo)


class _Bulk:
    """One ``ingest_many`` call: reads, decides and writes ``todo`` in order, filling ``out``; chunks of
    articles, pipelined.

    A chunk is read with one FIND call, decided here in input order (each
    article seeing the earlier ones as candidates when they share a band and
    are within the window, and seeing the stories they created or merged), and
    written with one INGEST call that re-checks what the decisions saw.

    **Pipelined.**  Reading chunk k+1 does not wait for chunk k to be written,
    and the server never waits for the client while both have work: it runs
    FIND(k+1), INGEST(k), FIND(k+2), INGEST(k+1), ... back to back on the
    index's own connection.  FIND(k+2) is written as soon as FIND(k+1)'s answer
    is in (behind INGEST(k), still running), and INGEST(k+1) as soon as chunk
    k+1 is decided.  Each FIND runs just before the previous chunk's INGEST, so
    its answers lack that chunk; the client adds it from what it decided
    (candidates, stories, merges), exactly as it adds the chunk's own earlier
    articles.  Once INGEST(k) answers ``ok`` with the write version it started
    from, chunk k+1's records are patched to what FIND would have read after it:
    chunk k's entries appended to the bucket values, chunk k's candidates added
    to the stories to re-check, and the write version moved past INGEST(k) when
    nothing else wrote in between (else INGEST(k+1) re-checks everything, as for
    any concurrent write).  If INGEST(k) does not write it all (another worker
    got in the way), chunk k+1's decisions and chunk k+2's answers are dropped
    and all are read again.  So the outcome is the one-at-a-time outcome, with
    the client's deciding and the server's reading and writing overlapped.  A
    chunk that stops at an id already stored or repeated, and the last chunk,
    are written on their own.  Without the index's own connection (a Redis
    Cluster) the chunks go one after another.
    """

    def __init__(self, index: RedisIndex, entries: list[Entry],
                 single: Callable[[Entry], Assignment], out: list[Any], chunk: int) -> None:
        self.index, self.entries, self.single, self.out = index, entries, single, out
        self.chunk = chunk
        s = index.settings
        self.bands, self.fw, self.window = s.bands, 2 + 4 * s.rows, s.window_days
        self.blobs: dict[int, bytes] = {}
        self.fields: dict[int, bytes] = {}  # sent to FIND, then to INGEST
        self.attempt = 0

    # -- preparing and reading ------------------------------------------------------
    def _encode_fields(self, todo: list[int]) -> None:
        """The bucket fields FIND needs (cheap; records are encoded later, see _encode)."""
        for i in todo:
            if i not in self.fields:
                self.fields[i] = self.index._fields(self.entries[i].signature)

    def _encode(self, todo: list[int]) -> None:
        """Bucket fields and the records INGEST stores."""
        self._encode_fields(todo)
        self._encode_ahead(None, todo)

    def _encode_ahead(self, direct: Any, todo: list[int]) -> None:
        """Encode records of ``todo`` for as long as the reply being waited for (on ``direct``; None:
        none, encode them all) has not come in.

        The wait would otherwise be idle, and encoding (mostly zlib) is a
        third of what the client does per article: done here, it is off the
        path between a chunk's answers and its INGEST, where the server may
        be the one waiting.
        """
        for i in todo:
            if i in self.blobs:
                continue
            if direct is not None and direct.ready():
                return
            self.blobs[i] = self.index._record(self.entries[i])

    def _find_args(self, todo: list[int]) -> list[Any]:
        args: list[Any] = ["many", self.window, 2]
        for i in todo:
            args += [self.fields[i], self.index._day_arg(self.entries[i].signature), self.entries[i].id]
        return args

    # -- deciding -------------------------------------------------------------------
    def _decide(self, todo: list[int], founds: list[Found], prev: Overlay, reach: int | None = None) -> _Chunk:
        """Plan ``todo`` in order (:func:`dedup.clustering.plan_run`) from FIND's answers plus ``prev``
        (written after those answers were read); ``reach`` is ``_first_stop(todo, founds, prev)`` when the
        caller has it already."""
        index, entries = self.index, self.entries
        if reach is None:
            reach = self._first_stop(todo, founds, prev)
        run = [entries[i] for i in todo[:reach]]
        known = index._known({h for f in founds[:reach] for h in f.cands})
        seen = []
        for found in founds[:reach]:
            sigs, stories = index._candidates_of(found, known)
            seen.append(Seen(sigs=sigs, stories=stories, own=found.own))
        plan = plan_run(run, seen, index.settings, index.story_taken, prev, overlay=True)
        decided: list[Decided] = []
        for d in plan.decisions:
            i, found = todo[d.at], founds[d.at]
            expected = {h: d.resolve(s) for h, s in found.cands.items()}
            decided.append((entries[i], self.blobs[i], self.fields[i], d.assignment, expected, found.version,
                            found.buckets))
            self.out[i] = d.assignment
        return _Chunk(decided, todo, plan.overlay, [d.from_earlier for d in plan.decisions],
                      [d.shared_earlier for d in plan.decisions], reach)

    def _first_stop(self, todo: list[int], founds: list[Found], prev: Overlay) -> int:
        """Position in ``todo`` of the first article already stored or repeated (in ``todo`` or in
        ``prev``), or ``len(todo)``: ``_decide`` stops there."""
        return first_stop([self.entries[i] for i in todo], [Seen(stored=f.stored) for f in founds], prev)

    # -- after the previous chunk was written -----------------------------------------
    def _patch(self, nxt: _Chunk, prev: _Chunk, v0: bytes, handles: list[bytes]) -> None:
        """Make ``nxt``'s records say what its FIND would have read after ``prev`` was written."""
        entry_of = {e.id: period_entry(h, e.signature.day) for (e, *_), h in zip(prev.decided, handles)}
        family = {e.id: bucket_family(day_tag(e.signature.day)) for e, *_ in prev.decided}
        id_of = {v[:4]: c for c, v in entry_of.items()}
        bands = self.bands
        moved = str(int(v0) + 1).encode()
        for n, (e, blob, packed, assignment, expected, version, buckets) in enumerate(nxt.decided):
            # the values FIND read are those of the article's own period: only articles of that period were
            # written to them (the others, candidates or not, went to their own period's buckets)
            fam = bucket_family(day_tag(e.signature.day))
            shared = [(b, ids) for b, ids in nxt.prev_bands[n] if any(family[c] == fam for c in ids)]
            if shared:  # append the previous chunk's entries to the bucket values FIND read
                lens = np.frombuffer(buckets, dtype="<u4", count=bands).tolist()
                starts = [4 * bands]
                for n_b in lens:
                    starts.append(starts[-1] + (0 if n_b == 0xFFFFFFFF else n_b))
                values = [None if n_b == 0xFFFFFFFF else buckets[starts[b]:starts[b + 1]] for b, n_b in enumerate(lens)]
                for b, ids in shared:
                    values[b] = (values[b] or b"") + b"".join(entry_of[c] for c in ids if family[c] == fam)
                buckets = (np.asarray([0xFFFFFFFF if v is None else len(v) for v in values], dtype="<u4").tobytes()
                           + b"".join(v for v in values if v is not None) + buckets[starts[-1]:])
            elsewhere = {entry_of[c][:4] for _, ids in nxt.prev_bands[n] for c in ids if family[c] != fam}
            if elsewhere:  # and the previous chunk's handles to the digest of the other periods it reads
                reads = read_families(day_tag(e.signature.day), self.window)
                elsewhere = {h for h in elsewhere if reads is None or family[id_of[h]] in reads}
            if elsewhere:
                buckets = _with_digest(buckets, bands, elsewhere)
            if nxt.prev_cands[n]:
                expected = {**expected, **{entry_of[c][:4]: s for c, s in nxt.prev_cands[n].items()}}
            # nothing but `prev` wrote between this FIND (sent just before it) and now: its values, patched,
            # are current, so INGEST may skip the re-check; else it re-checks against them
            nxt.decided[n] = (e, blob, packed, assignment, expected, moved if version == v0 else version, buckets)

    # -- the loop -------------------------------------------------------------------------------------
    def run(self, todo: list[int]) -> None:
        queue = list(todo)
        while queue:
            direct = self.index._direct
            queue = self._pipelined(queue, direct) if direct is not None else self._one_by_one(queue)
            if queue:
                # a chunk was not all written (another worker got in the way, or the connection broke):
                # what it left, and what was decided on the assumption that it was, is read again after a pause
                pause_after_conflict(self.attempt)
                self.attempt += 1
                if self.attempt >= MAX_WRITE_ATTEMPTS:
                    self._give_up(queue)
                    return

    def _take(self, queue: list[int]) -> tuple[list[int], list[int]]:
        return queue[:self.chunk], queue[self.chunk:]

    def _one_by_one(self, queue: list[int]) -> list[int]:
        """Read, decide and write chunk after chunk (no connection of our own to pipeline on: a Redis
        Cluster).  Returns what is to be read again after a conflict ([] when all is done)."""
        while queue:
            part, queue = self._take(queue)
            founds = self._read(part)
            self._encode(part)
            ok, queue = self._write_alone(self._decide(part, founds, Overlay()), queue)
            if not ok:
                return queue
        return []

    def _write_alone(self, cur: _Chunk, queue: list[int]) -> tuple[bool, list[int]]:
        """Write ``cur`` with nothing in flight, then the article at its stop on its own.  Returns (True,
        what to read next) or, on a conflict, (False, what to read again and then the rest)."""
        ok, requeue = True, []
        if cur.decided:
            ok, requeue = self._settle(cur, self.index._write(cur.decided), None)
        if not ok:
            return False, requeue + queue
        self.attempt = 0  # conflicts are counted in a row, as for one chunk
        return True, self._after_stop(cur) + queue

    def _pipelined(self, queue: list[int], direct: Any) -> list[int]:
        """The server runs FIND(k+1), INGEST(k), FIND(k+2), INGEST(k+1), ... back to back.

        FIND(k+2) is written as soon as FIND(k+1)'s answer is in (behind
        INGEST(k)), so the server reads the next chunk while the client
        decides this one, and INGEST(k+1) goes out as soon as it is decided:
        neither side waits for the other as long as both have work.  Each
        FIND still runs just before the previous chunk's INGEST, so its
        answers lack exactly one chunk, the one ``_decide`` adds and
        ``_patch`` fills in.  A chunk that stops at a stored or repeated id
        (and the last chunk) is written on its own, and then the article at
        its stop, before reading on; so is every chunk when the connection
        cannot pipeline.  Returns what is to be read again ([] when all is
        done).
        """
        part, queue = self._take(queue)
        founds = self._read(part)
        pending: _Chunk | None = None  # decided, its INGEST written behind part's FIND and not read yet
        nxt: list[int] = []  # its FIND written behind pending's INGEST
        cur: _Chunk | None = None
        try:
            while True:
                nxt = []
                prev = pending.layer if pending is not None else Overlay()
                # a chunk that stops early is written on its own: nothing is read behind it
                reach = self._first_stop(part, founds, prev)
                if queue and reach == len(part):
                    nxt, queue = self._take(queue)
                    self._encode_fields(nxt)
                    if not direct.push([("FIND", self._find_args(nxt))]):  # cannot pipeline: one by one
                        queue, nxt = nxt + queue, []
                self._encode(part)
                cur = self._decide(part, founds, prev, reach)
                if pending is not None:
                    self._encode_ahead(direct, nxt)
                    ok, requeue = self._settle(pending, self.index._written(pending.decided, direct.recv()), cur)
                    if not ok:
                        for i in cur.todo:
                            self.out[i] = None
                        if nxt:
                            direct.recv()  # nxt's answers: read and dropped, nxt is read again
                        return requeue + cur.todo + nxt + queue
                    self.attempt = 0
                    pending = None
                if not nxt:  # nothing in flight: write cur on its own, then its stop, then read on
                    ok, queue = self._write_alone(cur, queue)
                    if not ok:
                        return queue
                    cur = None  # written: nothing to read again if the connection breaks from here on
                    if not queue:
                        return []
                    part, queue = self._take(queue)
                    founds = self._read(part)
                    continue
                direct.push([("INGEST", self.index._ingest_args(cur.decided))])
                pending, part = cur, nxt
                self._encode_ahead(direct, part)
                founds = [self.index._parse_find(r) for r in direct.recv()]
        except PipelineBroken as exc:
            # what was in flight may or may not have run: every article not confirmed written is read
            # again (one that was written answers 'stored' and goes through `single`)
            if isinstance(exc, ScriptsMissing):  # a new or restarted server: load the scripts, then go again
                self.index._load_scripts()
            again = [i for c in (pending, cur) if c is not None for i in c.todo] + part + nxt
            again = list(dict.fromkeys(again))
            for i in again:
                if isinstance(self.out[i], Assignment):
                    self.out[i] = None
            return [i for i in again if self.out[i] is None] + queue
        except BaseException:
            direct.abandon()
            raise

    def _read(self, part: list[int]) -> list[Found]:
        """FIND for ``part`` with nothing in flight (through redis-py when the script must be loaded)."""
        self._encode_fields(part)
        return [self.index._parse_find(r) for r in self.index._run("FIND", *self._find_args(part))]

    def _settle(self, pending: _Chunk, written: tuple[int, str, bytes, list[bytes]], cur: _Chunk | None
                ) -> tuple[bool, list[int]]:
        """INGEST's answer for ``pending`` (as ``RedisIndex._written`` reads it), and ``cur`` (decided while
        it ran, None when nothing was) patched to it.  Returns (all written, what to read again when not)."""
        done, status, v0, handles = written
        written_idx = [i for i in pending.todo[:pending.stop] if isinstance(self.out[i], Assignment)]
        for i in written_idx[done:]:
            self.out[i] = None  # not written: decide again
        if status != "ok":
            return False, [i for i in pending.todo if self.out[i] is None]
        if cur is not None:
            self._patch(cur, pending, v0, handles)
        return True, []

    def _after_stop(self, pending: _Chunk) -> list[int]:
        """``pending`` is written; its article at ``stop`` goes on its own; returns what follows it."""
        if pending.stop >= len(pending.todo):
            return []
        i = pending.todo[pending.stop]
        try:
            self.out[i] = self.single(self.entries[i])
        except DedupError as exc:
            self.out[i] = exc
        return pending.todo[pending.stop + 1:]

    def _give_up(self, queue: list[int]) -> None:
        for i in queue:
            if self.out[i] is None:
                self.out[i] = gave_up(self.entries[i].id, self.attempt, f"namespace {self.index.namespace!r}")



def _in_order(index: RedisIndex, entries: list[Entry], single: Callable[[Entry], Assignment], chunk: int
              ) -> list[Assignment | DedupError]:
    out: list[Assignment | DedupError | None] = [None] * len(entries)
    pending: list[int] = []
    for i, e in enumerate(entries):
        try:
            check_id(e.id)
            pending.append(i)
        except DedupError as exc:
            out[i] = exc
    if len(pending) == 1:
        try:
            out[pending[0]] = single(entries[pending[0]])
        except DedupError as exc:
            out[pending[0]] = exc
    elif pending:
        _Bulk(index, entries, single, out, chunk).run(pending)
    return [o if o is not None else DedupError("not ingested") for o in out]
