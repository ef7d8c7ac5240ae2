"""The spread layout of the Redis index: the buckets in cluster slots of their own, one per band group.

The slot layout (:class:`~dedup.index.redis.slot.RedisIndex`) keeps a whole index in one slot, because its
scripts change buckets and stories in one atomic step; on a Redis Cluster one master then does all the
work of an index.  Here only what must change together shares the namespace's slot, ``{ns}``: records,
handles, the handle table, stories, counters and sentence counts.  The buckets, most of the server's
work per article (32 reads and 32 writes), live in one slot per group of bands (band b in group
b mod 6, tag ``ns:b<group>...``: :func:`~dedup.index.redis.keys.band_namespace`), spread evenly over
the masters.  No script spans two slots.

Ingesting an article:

1. read its 32 buckets (one call per band group, written to every master before any reply is read);
2. look up the candidates' stories in the story slot (skipped when there is none, or when this client
   already knows them all), decide in Python;
3. commit it in the story slot (record, story; the decision is re-checked as in the slot layout), which
   also notes ``handle + bucket fields`` in the ``todo`` zset;
4. add it to its buckets: each group's script answers what the buckets held before the add;
5. if a bucket held an article the first read did not see (committed meanwhile by another process),
   verify it and link the two stories (``S_LINK``);
6. clear the todo entry (sent with the next commit, or on :meth:`flush`).

Why this ends with the one-process partition: two articles that share a bucket both add themselves to
it, one after the other, and the later one sees the earlier in step 4's answer.  The earlier one is
committed by then (step 3 comes before step 4), so its record can be read and the pair verified and
linked.  Links are symmetric and stories are the connected components of the links, so the order of
commits does not matter.  A story named after an article may keep another name when two stories
merge concurrently (the smallest id wins), as it may in one process with another arrival order.

Crashes: an article is never half committed (step 3 is one script).  A crash between steps 3 and 6
leaves buckets behind the commit (an article missing from some buckets, or a deleted one still in
them); the todo entry survives, and :meth:`SpreadIndex.sweep` (run on open, and by anyone) finishes
entries older than a minute: a committed article is added to its buckets again (adding is
idempotent) and linked with whatever they hold; a deleted one is removed from them.  Readers meanwhile
skip bucket entries whose handle is not in the handle table.

Costs more than the slot layout: three to four round trips per article instead of one to two, and
12 band-group script calls.  What it buys is that the bucket work of one index spreads over the
masters (figures in ``docs/redis.md``, "The spread layout").
"""

from __future__ import annotations

import contextlib
import time
from typing import Any, Callable, Iterable, Iterator

import redis
from redis.cluster import RedisCluster
from redis.exceptions import AskError, ClusterDownError, MovedError, NoScriptError, TryAgainError

from ...clustering import Seen, decide_one, plan_run, verify_many, with_late_links
from ...records import Assignment, DedupError, Entry, Signature
from ...settings import Settings
from ..base import CONFLICT, MAX_WRITE_ATTEMPTS, Conflict, pause_after_conflict, retry_on_conflict
from .codec import decode_entry
from .scripts import SPREAD as redis_spread_lua
from .slot import SIG_CACHE_SIZE, RedisIndex, text_of
from .errors import guarded, slot_moving
from .keys import UNDATED_TAG, band_namespace, check_id, day_tag, entries_in, key, tag_within
from .connection import DirectScripts, PipelineBroken

# band b's buckets live in group b mod BAND_GROUPS, each group a slot of its own.  Each group costs a
# script call per step and article on its master, so fewer groups cost less in all; more groups spread
# more evenly over more masters (6: even over 2, 3 or 6 masters).  Server CPU per streamed article on the
# busiest master of a local 3-master cluster: 4 groups 403 us (uneven), 6 groups 474-491, 12 groups
# 575-604, 16 groups 739 (docs/redis.md, "The spread layout").  Part of the namespace's fingerprint.
BAND_GROUPS = 6
MAX_CONFLICTS = 5  # a bulk chunk whose first article keeps conflicting goes one article at a time
SWEEP_AGE_S = 60.0  # a todo entry this old belongs to a client that crashed or hung


def _on_the_move(exc: BaseException) -> bool:
    """Whether a reply says a slot is moving (ASK, TRYAGAIN), not that it has moved (MOVED, which redis-py
    makes a kind of ASK).  A script sent on to the importing master would find the keys that have not
    arrived yet missing and write beside them, so it is not sent on; see docs/redis.md, "Resharding"."""
    return isinstance(exc, (AskError, TryAgainError)) and not isinstance(exc, MovedError)


class SpreadIndex(RedisIndex):
    """A :class:`RedisIndex` whose buckets live in one slot per band group (see the module docstring)."""

    layout = "spread"

    def __init__(self, settings: Settings, *, url: str, namespace: str = "dedup", **kwargs: Any) -> None:
        # (set before the base class claims the namespace, which calls _forget)
        self._done: list[tuple[bytes, bytes]] = []  # finished todo entries, cleared with the next commit
        self._story_wire: dict[str, DirectScripts] = {}
        self._story_seen: dict[bytes, str] = {}  # handle -> its story when this client last saw it
        self._renamed: dict[str, str] = {}  # story -> the story this client saw it merged into
        super().__init__(settings, url=url, namespace=namespace, **kwargs)
        self._sp = {n: self._r.register_script(getattr(redis_spread_lua, n)) for n in redis_spread_lua.SCRIPTS}
        self._groups = min(settings.bands, BAND_GROUPS)
        self._tags = [band_namespace(namespace, g, self._groups) for g in range(self._groups)]
        self._band_keys = [key(t, "lh") for t in self._tags]
        self._width = 2 + 4 * settings.rows
        self._cluster = isinstance(self._r, RedisCluster)
        self._band_wire: dict[str, DirectScripts] = {}
        self._load_band_script()
        self.sweep()
        self._next_sweep = time.monotonic() + SWEEP_AGE_S  # a long-running worker sweeps once a minute

    def _layout_id(self) -> str:
        return f"{super()._layout_id()}{min(self.settings.bands, BAND_GROUPS)}"

    def _forget(self) -> None:
        """Also drop the story wires (they send the old epoch), the stories seen by handle, and the todo
        entries finished in the old epoch (gone with it: meta goes only once the todo zset is empty)."""
        super()._forget()
        for ds in self._story_wire.values():
            ds.close()
        self._story_wire.clear()
        self._story_seen.clear()
        self._renamed.clear()
        self._done.clear()

    # -- calls ------------------------------------------------------------------
    # Script calls go straight on the wire (connection.DirectScripts, one connection per master) and
    # the band calls of a step are written to every master before any reply is read, so the masters
    # work in parallel.  Anything out of the ordinary (a moved slot, NOSCRIPT, a dropped connection)
    # falls back to redis-py, which follows redirections and loads scripts; band calls may safely run
    # twice (adding or removing an entry again changes nothing).
    def _node(self, k: str) -> tuple[str, Any]:
        """(name, client) of the server holding key ``k``."""
        if not self._cluster:
            return "", self._r
        node = self._r.get_node_from_key(k)
        return node.name, node.redis_connection

    def _wire(self, k: str, story: bool) -> DirectScripts:
        name, client = self._node(k)
        cache = self._story_wire if story else self._band_wire
        ds = cache.get(name)
        if ds is None:
            if story:  # this layout's story scripts and the slot layout's it reuses (see _run)
                shas = {n: sc.sha for n, sc in [*self._scripts.items(), *self._sp.items()] if n != "BAND"}
                fixed = [self._meta_key, *self._fixed_args()]
            else:
                shas, fixed = {"BAND": self._band_sha}, []
            ds = cache[name] = DirectScripts(client, shas, fixed, spin_us=self.settings.redis_spin_us)
        return ds

    def _story(self, name: str, *args: Any) -> Any:
        """Run a story-slot script: on the wire, else through redis-py (which loads it after NOSCRIPT)."""
        try:
            ok, reply = self._wire(self._meta_key, story=True).call(name, args)
            if ok:
                return reply
        except (ClusterDownError, AskError, TryAgainError) as exc:
            if _on_the_move(exc):
                raise slot_moving(self, exc) from exc
            # the slot has moved (MOVED) or the cluster is re-forming: redis-py follows it
        script = self._sp[name] if name in self._sp else self._scripts[name]
        return script(keys=[self._meta_key], args=[*self._fixed_args(), *args])

    def _run(self, name: str, *args: Any) -> Any:
        """The slot layout's story scripts this layout reuses (RESPLIT, RECORDS, ...) take the route of its
        own: never sent on to a master that is importing the slot (see _story)."""
        return self._story(name, *args)

    def _load_band_script(self) -> None:
        self._band_sha = self._r.script_load(redis_spread_lua.BAND)  # on every master of a cluster

    def _fanout(self, calls: list[tuple[int, str, list[bytes]]]) -> list[Any]:
        """BAND calls (group, op, work: (field, entry) pairs), all written before any reply is read, so the
        masters work in parallel.  Returns each call's answers, in order."""
        by_node: dict[DirectScripts, list[int]] = {}
        sent: list[DirectScripts] = []
        replies: list[Any] = [None] * len(calls)
        try:
            for n, (g, _, _) in enumerate(calls):
                by_node.setdefault(self._wire(self._band_keys[g], story=False), []).append(n)
            for ds, ns in by_node.items():
                if not ds.send([("BAND", self._band_args(*calls[n])) for n in ns]):
                    raise PipelineBroken("connection busy")
                sent.append(ds)
            for ds, ns in by_node.items():
                for n in ns:
                    replies[n] = ds.recv()
            return replies
        except (PipelineBroken, redis.RedisError) as exc:
            for ds in sent:
                ds.abandon()
            if _on_the_move(exc):  # not sent on to an importing master, as in _story
                raise slot_moving(self, exc) from exc
        return self._fanout_slowly(calls)

    def _fanout_slowly(self, calls: list[tuple[int, str, list[bytes]]]) -> list[Any]:
        for attempt in range(2):
            pipe = self._r.pipeline(transaction=False)
            for call in calls:
                pipe.execute_command("EVALSHA", self._band_sha, *self._band_args(*call))
            try:
                return pipe.execute()
            except NoScriptError:  # a master restarted or failed over without the script
                if attempt:
                    raise
                self._load_band_script()
        raise AssertionError("unreachable")

    def _band_args(self, g: int, op: str, work: list[bytes]) -> list[Any]:
        return [1, self._band_keys[g], self._tags[g], 1, self.settings.rows, op, *work]

    def _group_of(self, hb: bytes) -> int:
        """The band group whose slot keeps the record of handle ``hb``."""
        return int.from_bytes(hb, "little") % self._groups

    def _calls(self, op: str, items: list[tuple[int, bytes, bytes]], where: dict[int, list[int]] | None = None
               ) -> list[tuple[int, str, list[bytes]]]:
        """One call per band group for (band, field, entry) items; ``where`` gets each group's item positions."""
        work: dict[int, list[bytes]] = {}
        for i, (b, f, e) in enumerate(items):
            g = b % self._groups
            work.setdefault(g, []).extend((f, e))
            if where is not None:
                where.setdefault(g, []).append(i)
        return [(g, op, w) for g, w in sorted(work.items())]

    def _record_calls(self, op: str, records: dict[bytes, bytes]) -> list[tuple[int, str, list[bytes]]]:
        """One call per band group for records by handle (``rput`` / ``rget`` / ``rdel``)."""
        work: dict[int, list[bytes]] = {}
        for hb, blob in records.items():
            work.setdefault(self._group_of(hb), []).extend((b"%d" % int.from_bytes(hb, "little"), blob))
        return [(g, op, w) for g, w in sorted(work.items())]

    def _bands(self, op: str, items: list[tuple[int, bytes, bytes]]) -> list[Any]:
        """BAND ``op`` on (band, field, entry) items, one call per group.  Answers in the order of ``items``."""
        where: dict[int, list[int]] = {}
        calls = self._calls(op, items, where)
        out: list[Any] = [None] * len(items)
        for (g, _, _), answers in zip(calls, self._fanout(calls)):
            for i, a in zip(where[g], answers):
                out[i] = a
        return out

    def _split(self, fields: bytes) -> list[bytes]:
        w = self._width
        return [fields[b * w:(b + 1) * w] for b in range(self.settings.bands)]

    def _apply(self, todo: list[Any], tags: dict[bytes, int] | None = None,
               records: dict[bytes, bytes] | None = None) -> list[list[Any]]:
        """Write what a story-slot script noted: ``+``: add the article to its buckets and its record to its
        group's slot (``records``, by handle), ``-``: remove it from both.  Queues the entries for
        clearing once those writes are done (a write that fails leaves them to the sweep).  Returns, per
        ``+`` entry in order, the answers of its adds: each bucket's value before, in band order."""
        adds: list[tuple[int, bytes, bytes]] = []
        dels: list[tuple[int, bytes, bytes]] = []
        gone: dict[bytes, bytes] = {}
        finished: list[tuple[bytes, bytes]] = []
        for j in range(0, len(todo), 3):
            op, member, score = text_of(todo[j]), todo[j + 1], todo[j + 2]
            hb, fields = member[:4], self._split(member[4:])
            if op == "+":
                tag = (tags or {}).get(hb, UNDATED_TAG).to_bytes(2, "little")
                adds += [(b, f, hb + tag) for b, f in enumerate(fields)]
            else:
                dels += [(b, f, hb) for b, f in enumerate(fields)]
                gone[hb] = b""
            finished.append((member, score))
        if dels:
            self._fanout(self._calls("del", dels) + self._record_calls("rdel", gone))
        if not adds:
            self._done += finished
            return []
        where: dict[int, list[int]] = {}
        calls = self._calls("add", adds, where)
        replies = self._fanout(calls + self._record_calls("rput", records or {}))
        self._done += finished
        before: list[Any] = [None] * len(adds)
        for (g, _, _), answers in zip(calls, replies):
            for i, a in zip(where[g], answers):
                before[i] = a
        n = self.settings.bands
        return [before[k:k + n] for k in range(0, len(before), n)]

    # -- records: in the band groups' slots ----------------------------------------------
    def _blobs(self, handles: list[bytes]) -> dict[bytes, tuple[str, bytes]]:
        """Records by handle from their groups' slots; one not there yet (its writer is between commit and
        bucket writes, or died there) from the copy the commit left in the story slot."""
        if not handles:
            return {}
        calls = self._record_calls("rget", dict.fromkeys(handles, b""))
        out: dict[bytes, tuple[str, bytes]] = {}
        for (g, _, work), answers in zip(calls, self._fanout(calls)):
            for h_dec, blob in zip(work[0::2], answers):
                if blob:
                    hb = int(h_dec).to_bytes(4, "little")
                    out[hb] = (key(self._tags[g], "a", int(h_dec)), blob)
        missing = [h for h in handles if h not in out]
        if missing:
            out.update(super()._blobs(missing))
        return out

    def _records(self, ids: Iterable[str]) -> dict[str, tuple[str, bytes]]:
        ids = list(dict.fromkeys(ids))
        if not ids:
            return {}
        handles = self._handles(ids)
        blobs = self._blobs(list(handles.values()))
        return {i: blobs[h] for i, h in handles.items() if h in blobs}

    @guarded
    def flush(self) -> None:
        """Clear the todo entries this client finished (otherwise sent with its next commit)."""
        if self._done:
            done, self._done = self._done, []
            self._story("S_CLEAR", *[x for pair in done for x in pair])

    def _sweep_now_and_then(self) -> None:
        """What a crashed client left is finished by the next process to open the index, and by any
        process that keeps ingesting, once a minute (one script call when there is nothing to do)."""
        if time.monotonic() >= self._next_sweep:
            self._next_sweep = time.monotonic() + SWEEP_AGE_S
            self.sweep()

    def _take_done(self) -> list[bytes]:
        done, self._done = self._done, []
        return [str(len(done)).encode(), *[x for pair in done for x in pair]]

    # -- what this client knows of stories --------------------------------------------
    def _story_known(self, hb: bytes) -> str | None:
        """The story this client last saw the handle in, following the merges it made or saw since."""
        story = self._story_seen.get(hb)
        for _ in range(64):  # renames never loop (a story merged into is never a renamed one); a bound anyway
            if story is None or story not in self._renamed:
                return story
            story = self._renamed[story]
        return None

    def _note_story(self, hb: bytes, story: str, merged: Iterable[str]) -> None:
        if len(self._story_seen) >= SIG_CACHE_SIZE:
            self._story_seen.clear()
            self._renamed.clear()
        self._story_seen[hb] = story
        self._renamed.pop(story, None)
        for old in merged:
            if old != story:
                self._renamed[old] = story

    # -- articles ---------------------------------------------------------------
    @guarded
    def put(self, entry: Entry) -> None:
        check_id(entry.id)
        blob = self._record(entry)
        while True:
            hb, *todo = self._story("S_PUT", entry.id, blob, self._fields(entry.signature))
            if hb:
                break
            self.delete(entry.id)  # a new version: the stored one goes first (its record is read for it)
        self._apply(todo, {hb: day_tag(entry.signature.day)}, {hb: blob})
        self.flush()

    def delete_many(self, article_ids: list[str]) -> int:
        """One at a time: a delete here is a story-slot script plus the band groups' writes (see delete).
        Their stories owe their re-splits, as with the slot layout's batch."""
        return sum(self.delete(aid) is not None for aid in article_ids)

    @guarded
    def delete(self, article_id: str) -> Entry | None:
        for _ in range(MAX_WRITE_ATTEMPTS):
            hb = self._handles([article_id]).get(article_id)
            if hb is None:
                return None
            found = self._blobs([hb]).get(hb)
            blob, *todo = self._story("S_DELETE", article_id, int.from_bytes(hb, "little"),
                                      found[1] if found else b"")
            if todo and text_of(todo[0]) == "moved":  # replaced meanwhile: delete the version stored now
                continue
            self._apply(todo)
            self.flush()
            label = found[0] if found else self._k("a", int.from_bytes(hb, "little"))
            return decode_entry(blob, label, self.settings) if blob else None
        raise DedupError(f"article {article_id!r}: gave up deleting it after {MAX_WRITE_ATTEMPTS} concurrent "
                         f"replacements in namespace {self.namespace!r}; retry")

    def _lookup(self, article_id: str, handles: list[bytes]) -> tuple[bytes | None, list[str], list[Any]]:
        """Own handle, members of a story named after the id, and the info of each handle."""
        return self._parse_lookup(self._story("S_LOOKUP", article_id, *handles))

    @staticmethod
    def _parse_lookup(reply: list[Any]) -> tuple[bytes | None, list[str], list[Any]]:
        n_own = int(reply[1])
        return reply[0] or None, sorted(text_of(m) for m in reply[2:2 + n_own]), reply[2 + n_own:]

    def _lookup_many(self, asks: list[tuple[str, list[bytes]]]) -> list[tuple[bytes | None, list[str], list[Any]]]:
        """:meth:`_lookup` of several ids in one round trip (read-only, so a failed pipeline is simply redone)."""
        try:
            ds = self._wire(self._meta_key, story=True)
            if ds.send([("S_LOOKUP", [aid, *hs]) for aid, hs in asks]):
                try:
                    return [self._parse_lookup(ds.recv()) for _ in asks]
                except (PipelineBroken, redis.RedisError):
                    ds.abandon()
        except (PipelineBroken, redis.RedisError):
            pass
        return [self._lookup(aid, hs) for aid, hs in asks]

    def _read_buckets(self, fields: list[bytes]) -> dict[bytes, int]:
        seen: dict[bytes, int] = {}
        for v in self._bands("get", [(b, f, b"") for b, f in enumerate(fields)]):
            for h, t in entries_in(v).items():
                seen.setdefault(h, t)
        return seen

    @staticmethod
    def _info_story(info: bytes) -> str:
        return text_of(info[4:])

    @staticmethod
    def _info_day(info: bytes) -> int | None:
        d = int.from_bytes(info[:4], "little", signed=True)
        return None if d == -(2**31) else d

    @guarded
    def candidates(self, signature: Any) -> set[str]:
        day, window = signature.day, self.settings.window_days
        near = [h for h, t in self._read_buckets(self._split(self._fields(signature))).items()
                if tag_within(t, day, window)]
        if not near:
            return set()
        _, _, infos = self._lookup("", near)
        live = {h for h, info in zip(near, infos)
                if info and (day is None or self._info_day(info) is None
                             or abs(self._info_day(info) - day) <= window)}
        return {cid for cid, _ in self._known(live).values()}

    # -- the compound step --------------------------------------------------------
    @guarded
    def ingest(self, entry: Entry) -> Assignment | None:
        """Steps 1-6 of the module docstring; a conflict at the commit starts over."""
        check_id(entry.id)
        blob = self._record(entry)
        sig = entry.signature
        packed = self._fields(sig)
        fields = self._split(packed)
        window = self.settings.window_days
        tag = day_tag(sig.day)
        alone_ok = True
        trust_cache = True

        def attempt() -> Assignment | None | Conflict:
            nonlocal alone_ok, trust_cache
            seen = self._read_buckets(fields)
            near = [h for h, t in seen.items() if tag_within(t, sig.day, window)]
            if not near and alone_ok:
                assignment = Assignment(entry.id, entry.id, "new")
                reply = self._story("S_COMMIT", *self._take_done(), 1, entry.id, blob, packed, entry.id, "alone", 0, 0)
            else:
                cached = {h: self._story_known(h) for h in near} if trust_cache else {}
                if trust_cache and all(h in self._sig_cache and cached[h] is not None for h in near):
                    # every candidate's story is known here (most often: this client wrote them): decide
                    # without the lookup; the commit re-checks those stories, and that the id is not stored
                    # and no story is named after it, and a stale guess costs one retry with the lookup
                    own_hb, own, cands = None, [], cached
                else:
                    own_hb, own, infos = self._lookup(entry.id, near)
                    cands = {h: self._info_story(info) for h, info in zip(near, infos) if info}
                    self._story_seen.update(cands)
                if own_hb is not None:
                    reply = [b"exists"]
                else:
                    known = self._known(set(cands))
                    sigs = {known[h][0]: known[h][1] for h in cands if h in known}
                    stories = {known[h][0]: cands[h] for h in cands if h in known and cands[h]}
                    assignment = decide_one(entry, Seen(sigs=sigs, stories=stories, own=own), self.settings,
                                            self.story_taken)
                    expected = [x for h in cands if h in known for x in (h, cands[h])]
                    mode = "new" if assignment.action == "new" else "join"
                    reply = self._story("S_COMMIT", *self._take_done(), 1, entry.id, blob, packed, assignment.story,
                                        mode, len(assignment.merged), *assignment.merged, len(expected) // 2,
                                        *expected)
            status = text_of(reply[0])
            if status == "exists":
                return None
            if status != "ok":
                if not near:
                    alone_ok = False  # a story is named after the article: decide with the lookup
                trust_cache = False
                return CONFLICT
            hb = reply[2]
            self._remember(hb, entry)
            self._note_story(hb, assignment.story, assignment.merged)
            with self._kept_on_failure():
                before = self._apply(reply[3:], {hb: tag}, {hb: blob})[0]
                assignment = self._link_late(entry, hb, seen, before, assignment)
            if sig.day is not None:
                self._retain(sig.day)
            self._sweep_now_and_then()
            return assignment

        return retry_on_conflict(attempt, entry.id, f"namespace {self.namespace!r}")

    def _link_late(self, entry: Entry, hb: bytes, seen: dict[bytes, int], before: list[Any],
                   assignment: Assignment) -> Assignment:
        """Step 5: verify and link articles that entered our buckets after we read them."""
        sig, window = entry.signature, self.settings.window_days
        late: dict[bytes, int] = {}
        for v in before:
            for h, t in entries_in(v).items():
                if h != hb and h not in seen and tag_within(t, sig.day, window):
                    late.setdefault(h, t)
        if not late:
            return assignment
        founded = assignment.action == "new"
        stories, new_links = self._verify_and_link(entry.id, sig, list(late), founded)
        if not new_links:
            return assignment
        if stories:
            self._note_story(hb, stories[0], stories[1:])
        return with_late_links(assignment, stories, new_links)

    @contextlib.contextmanager
    def _kept_on_failure(self) -> Iterator[None]:
        """Bucket writes and late links: if they fail (a lost connection, a slot on the move), take back
        the todo entries queued for clearing meanwhile, so they stay in the todo zset and the sweep links
        the articles with what their buckets hold, as for a client that died there."""
        mark = len(self._done)
        try:
            yield
        except BaseException:
            del self._done[mark:]
            raise

    def _verify_and_link(self, article_id: str, sig: Any, handles: list[bytes], founded: bool
                         ) -> tuple[list[str], list[tuple[str, float, float]]]:
        """Verify the article against the committed ones among ``handles`` and link those that are one
        story with it (S_LINK).  Returns the stories S_LINK folded (the first is where they went; empty
        when nothing linked, or the article is gone) and the links made."""
        _, _, infos = self._lookup("", handles)
        known = self._known({h for h, info in zip(handles, infos) if info})
        if not known:
            return [], []
        verdicts = verify_many(sig, [s for _, s in known.values()], self.settings)
        links = [(cid, round(cos, 4), round(r, 4)) for (cid, _), (ok, cos, r) in zip(known.values(), verdicts) if ok]
        if not links:
            return [], []
        stories = [text_of(s) for s in self._story("S_LINK", article_id, int(founded), *[c for c, _, _ in links])]
        return stories, links

    @guarded
    def ingest_many(
        self, entries: list[Entry], fallback: Callable[[Entry], Assignment] | None = None, chunk: int = 64,
    ) -> list[Assignment | DedupError]:
        """A batch in chunks of articles, each in four round trips instead of three to four per article.

        A chunk goes through the steps of :meth:`ingest` together:

        1. the buckets of all its articles are read in one fan-out (one call per band group);
        2. their candidates' stories (and whether each id is stored) in one pipelined lookup, and the
           candidates' signatures in one read;
        3. the articles are decided here in input order, each also seeing the chunk's earlier articles as
           candidates (when they share a bucket and are within the window) and the stories they created or
           merged, so the decisions are the one-at-a-time decisions;
        4. one commit writes them in order, re-checking each decision (candidates still in the stories it
           saw, a new story id still free); it stops at an id already stored (which then goes through
           ``single``: unchanged or replaced) or at a decision that no longer holds (the rest is read again);
        5. one fan-out adds the committed articles to their buckets; entries there that neither the read nor
           the chunk explain were committed by another process meanwhile, and are verified and linked as in
           streaming.

        With retention on, in runs between retention passes (:meth:`_in_retention_runs`).
        """
        single = fallback or self.ingest_or_fail
        try:
            if self.settings.retain_days > 0:
                return self._in_retention_runs(list(entries), lambda run: self._ingest_chunks(run, single, chunk))
            return self._ingest_chunks(entries, single, chunk)
        finally:
            self.flush()
            self._sweep_now_and_then()

    def _ingest_chunks(self, entries: list[Entry], single: Callable[[Entry], Assignment], chunk: int
                       ) -> list[Assignment | DedupError]:
        out: list[Any] = [None] * len(entries)
        todo: list[int] = []
        for i, e in enumerate(entries):
            try:
                check_id(e.id)
            except DedupError as exc:
                out[i] = exc
                continue
            todo.append(i)
        pos, conflicts = 0, 0
        while pos < len(todo):
            part, ids = [], set()
            for i in todo[pos:pos + chunk]:
                if entries[i].id in ids:  # a repeated id waits for the next chunk, after its first copy
                    break
                ids.add(entries[i].id)
                part.append(i)
            done, status = self._chunk(entries, part, out)
            pos += done
            if status == "exists" or (status == "conflict" and done == 0 and conflicts >= MAX_CONFLICTS):
                i = todo[pos]
                try:
                    out[i] = single(entries[i])
                except DedupError as exc:
                    out[i] = exc
                pos += 1
                conflicts = 0
            elif status == "conflict":
                conflicts = conflicts + 1 if done == 0 else 0
                pause_after_conflict(conflicts)
            else:
                conflicts = 0
        return [o if o is not None else DedupError("not ingested") for o in out]

    def _chunk(self, entries: list[Entry], part: list[int], out: list[Any]) -> tuple[int, str]:
        """Read, decide, commit and write the buckets of ``part``; returns (articles committed, status)."""
        window, nb = self.settings.window_days, self.settings.bands
        fields = {i: self._split(self._fields(entries[i].signature)) for i in part}
        values = self._bands("get", [(b, f, b"") for i in part for b, f in enumerate(fields[i])])
        seen: dict[int, dict[bytes, int]] = {}
        for k, i in enumerate(part):
            s: dict[bytes, int] = {}
            for v in values[k * nb:(k + 1) * nb]:
                for h, t in entries_in(v).items():
                    s.setdefault(h, t)
            seen[i] = s
        near = {i: [h for h, t in seen[i].items() if tag_within(t, entries[i].signature.day, window)] for i in part}
        looked = self._lookup_many([(entries[i].id, near[i]) for i in part])
        infos = {h: info for i, (_, _, inf) in zip(part, looked) for h, info in zip(near[i], inf) if info}
        known = self._known(set(infos))

        run: list[Entry] = []
        seen_run: list[Seen] = []
        for i, (own_hb, own, _) in zip(part, looked):
            if own_hb is not None:
                break  # commit what is planned, then this one goes on its own
            sigs: dict[str, Signature] = {}
            stories: dict[str, str] = {}
            for h in near[i]:
                if h in infos and h in known:
                    cid, sig = known[h]
                    sigs[cid] = sig
                    story = self._info_story(infos[h])
                    if story:
                        stories[cid] = story
            run.append(entries[i])
            seen_run.append(Seen(sigs=sigs, stories=stories, own=own))
        stop = len(run)
        plan = plan_run(run, seen_run, self.settings, self.story_taken)
        decided: list[tuple[int, int, Assignment, list[Any]]] = []  # (position in part, entry, assignment, expected)
        for d in plan.decisions:
            i = part[d.at]
            expected = [x for h in near[i] if h in infos and h in known
                        for x in (h, d.resolve(self._info_story(infos[h])))]
            decided.append((d.at, i, d.assignment, expected))
        if not decided:
            return stop, ("exists" if stop < len(part) else "ok")

        args: list[Any] = [len(decided)]
        blobs = {i: self._record(entries[i]) for _, i, _, _ in decided}
        for _, i, assignment, expected in decided:
            e = entries[i]
            mode = "new" if assignment.action == "new" else "join"
            args += [e.id, blobs[i], b"".join(fields[i]), assignment.story, mode, len(assignment.merged),
                     *assignment.merged, len(expected) // 2, *expected]
        reply = self._story("S_COMMIT", *self._take_done(), *args)
        status, n = text_of(reply[0]), int(reply[1])
        handles = reply[2:2 + n]
        tags, records = {}, {}
        for (_, i, _, _), hb in zip(decided, handles):
            self._remember(hb, entries[i])
            tags[hb] = day_tag(entries[i].signature.day)
            records[hb] = blobs[i]
        mine = dict.fromkeys(handles, 0)  # the chunk's own articles, which the decisions already saw
        with self._kept_on_failure():  # (the chunk's entries stay for the sweep: linking again is harmless)
            befores = self._apply(reply[2 + n:], tags, records)
            for (_, i, assignment, _), hb, before in zip(decided, handles, befores):
                out[i] = self._link_late(entries[i], hb, {**seen[i], **mine}, before, assignment)
        if n < len(decided):  # stopped at decided[n]: it and the rest are read and decided again
            for _, i, _, _ in decided[n:]:
                out[i] = None
            return decided[n][0], status
        return stop, ("exists" if stop < len(part) else "ok")

    # -- crash recovery -------------------------------------------------------------
    @guarded
    def sweep(self, age_s: float | None = None, limit: int = 1000) -> int:
        """Finish todo entries at least ``age_s`` old (default a minute), left by a client that crashed
        between committing an article (or deleting one) and writing its buckets.  Returns how many it
        finished.

        A spread ingest commits an article in the story slot (noting ``handle +
        bucket fields`` in the ``todo`` zset) and only then adds it to its buckets in
        the band-group slots.  A client that dies in between leaves an entry behind;
        so does one that dies deleting.  The sweep (run on open and once a minute by
        any process that keeps ingesting) finishes the entries old enough to belong
        to a dead client:

        - an article that is no longer committed leaves its buckets, and its record
          leaves its group;
        - a committed one is added to its buckets again and linked with every
          article they hold within the window, as its own ingest would have done.

        It is safe to run by anyone at any time: adding an article to a bucket
        twice changes nothing, links are idempotent, and an entry noted again since
        it was read belongs to its new owner (clearing compares the score).
        """
        age_s = SWEEP_AGE_S if age_s is None else age_s
        found = self._story("S_TODO", int(age_s * 1e6), limit)
        if not found:
            return 0
        pairs = [(found[j], found[j + 1]) for j in range(0, len(found), 2)]
        handles = [m[:4] for m, _ in pairs]
        _, _, infos = self._lookup("", handles)
        for (member, score), hb, info in zip(pairs, handles, infos):
            fields = self._split(member[4:])
            if not info:  # deleted (or never committed): out of its buckets, its record gone
                self._fanout(self._calls("del", [(b, f, hb) for b, f in enumerate(fields)])
                             + self._record_calls("rdel", {hb: b""}))
            else:
                record = self._blobs([hb]).get(hb)
                own = self._known({hb}).get(hb)
                day = self._info_day(info)
                t = day_tag(day).to_bytes(2, "little")
                # the record to its group (from the story slot's copy, which clearing the entry drops)
                calls = self._calls("add", [(b, f, hb + t) for b, f in enumerate(fields)])
                replies = self._fanout(calls + (self._record_calls("rput", {hb: record[1]}) if record else []))
                before = [v for answers in replies[:len(calls)] for v in answers]
                others = {h for v in before for h, tg in entries_in(v).items()
                          if h != hb and tag_within(tg, day, self.settings.window_days)}
                if own is not None and others:  # what it should have been linked with: all of them
                    self._verify_and_link(own[0], own[1], list(others), False)
            self._done.append((member, score))
        self.flush()
        return len(pairs)

    def close(self) -> None:
        try:
            self.flush()
        except Exception:  # closing must not fail on a dead server; the sweep finishes the entries
            pass
        for ds in [*self._story_wire.values(), *self._band_wire.values()]:
            ds.close()
        super().close()

