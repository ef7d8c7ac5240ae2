"""Bulk ingest of the Redis index: chunks of articles, pipelined (see RedisIndex.ingest_many).

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

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from ...clustering import Overlay, Seen, first_stop, plan_run
from ...records import Assignment, DedupError, Entry
from .keys import bucket_family, check_id, day_tag, period_entry, read_families
from .retention import starts_pass
from .connection import PipelineBroken, ScriptsMissing

MAX_INGEST_ATTEMPTS = 200  # reads and writes of one article (or chunk) that another writer got in the way of

if TYPE_CHECKING:
    from .slot import Decided, Found, RedisIndex


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

    decided: list["Decided"]
    todo: list[int]  # the chunk's articles (indexes into entries), decided or not
    layer: Overlay  # what the chunk's plan adds, for the chunk planned after it
    # per decided article: the previous chunk's articles it saw as candidates -> their story as decided,
    # and its bands that hold articles of the previous chunk (band number -> their ids)
    prev_cands: list[dict[str, str]]
    prev_bands: list[list[tuple[int, list[str]]]]
    stop: int  # position in todo of an article to ingest on its own (stored or repeated id), or len(todo)


class _Bulk:
    """One ``ingest_many`` call: reads, decides and writes ``todo`` in order, filling ``out``."""

    def __init__(self, index: "RedisIndex", entries: list[Entry],
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
    def _decide(self, todo: list[int], founds: list["Found"], prev: Overlay, reach: int | None = None) -> _Chunk:
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

    def _first_stop(self, todo: list[int], founds: list["Found"], prev: Overlay) -> int:
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
                self.index._backoff(self.attempt)
                self.attempt += 1
                if self.attempt >= MAX_INGEST_ATTEMPTS:
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

    def _read(self, part: list[int]) -> list["Found"]:
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
                self.out[i] = DedupError(
                    f"article {self.entries[i].id!r}: gave up after {self.attempt} conflicting concurrent "
                    f"updates in namespace {self.index.namespace!r}; retry it")


def ingest_in_order(index: "RedisIndex", entries: list[Entry],
                    single: Callable[[Entry], Assignment], chunk: int) -> list[Assignment | DedupError]:
    """``RedisIndex.ingest_many``: in runs between retention passes when retention is on
    (:func:`in_retention_runs`); a batch (or run) of one article through ``single``, which may take one
    round trip where a chunk takes two; otherwise :func:`ingest_chunks`.  Bad ids and errors come back
    in place."""
    if index.settings.retain_days > 0:
        return in_retention_runs(index, entries, lambda run: _in_order(index, run, single, chunk))
    return _in_order(index, entries, single, chunk)


def _in_order(index: "RedisIndex", entries: list[Entry], single: Callable[[Entry], Assignment], chunk: int) -> list[Assignment | DedupError]:
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
        ingest_chunks(index, entries, pending, single, out, chunk)
    return [o if o is not None else DedupError("not ingested") for o in out]


def in_retention_runs(index: "RedisIndex", entries: list[Entry],
                      ingest_run: Callable[[list[Entry]], list[Assignment | DedupError]]
                      ) -> list[Assignment | DedupError]:
    """A batch with retention on, with the one-at-a-time outcome.

    Ingesting one article runs a retention pass after writing it when its
    publication day is newer than any this client has seen.  So the batch
    goes in runs, each ending at such an article: no pass can delete
    between two articles of a run, which therefore goes in chunks
    (``ingest_run``), and the pass follows it, as it would follow that
    article.  A feed in publication order breaks a batch once per new day,
    not at every article (every article went one at a time before: a
    worker's batches lost their chunking whenever retention was on).  The
    pass is skipped when that article failed (the next newer one starts
    it), and its error takes the article's place, as one at a time.
    """
    out: list[Assignment | DedupError] = []
    pos = 0
    while pos < len(entries):
        seen = index._newest_day_seen
        starter = next((i for i in range(pos, len(entries)) if starts_pass(entries[i].signature.day, seen)), None)
        end = len(entries) - 1 if starter is None else starter
        run = ingest_run(entries[pos:end + 1])
        day = entries[end].signature.day
        if starter is not None and day is not None and isinstance(run[-1], Assignment):
            try:
                index._retain(day)
            except DedupError as exc:
                run[-1] = exc
        out += run
        pos = end + 1
    return out


def ingest_chunks(index: "RedisIndex", entries: list[Entry], todo: list[int],
                  single: Callable[[Entry], Assignment], out: list[Any], chunk: int) -> None:
    """Read, decide and write the articles ``todo`` (indexes into ``entries``) in order, filling ``out``."""
    _Bulk(index, entries, single, out, chunk).run(todo)
