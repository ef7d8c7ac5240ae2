"""The in-process index: plain dicts, for the CLI's server-less batches and the tests."""

from __future__ import annotations

import bisect
import itertools
from collections import Counter, defaultdict
from typing import Iterable, Mapping, Sequence

import numpy as np

from ..clustering import RunPlan, Seen
from ..records import Entry, Signature
from ..settings import Settings
from ..hashtable import BandTable
from .base import StoryIndex


_BAND_BITS = 9  # band number: up to 511 bands
_VALUE_BITS = 32  # a band's value (rows > 1: a 32-bit mix of the band's values)
_UNDATED = 1  # day code of an undated article; a dated one has day ordinal + 2 (keys are never 0)


def _day_code(day: int | None) -> int:
    return _UNDATED if day is None else day + 2


class MemoryIndex(StoryIndex):
    """Everything in process memory; lost when the process ends.

    LSH buckets are one :class:`~dedup.hashtable.BandTable` (numpy
    arrays) keyed by ``day code << 41 | band value << 9 | band``: a key
    names the publication day too, so a query asks for its band values on
    each day of its window (and undated), and gets exactly the articles
    that share a band *and* fall in the window.

    :meth:`read` looks up the stored candidates of a whole run with a
    handful of numpy calls and :meth:`commit` inserts the run's buckets
    together (the run's articles find each other in the core's plan, by
    their band keys); the decisions follow input order, so the outcome is
    the one-at-a-time outcome.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._entries: dict[str, Entry] = {}
        self._table = BandTable()
        self._num: dict[str, int] = {}  # article id -> its number in the table
        self._ids: list[str | None] = []  # number -> article id (None once deleted)
        self._days: Counter[int] = Counter()  # day code -> stored articles (undated queries read every day)
        self._story_of: dict[str, str] = {}
        self._members: dict[str, set[str]] = {}
        self._touched: dict[str, int] = {}
        self._clock = itertools.count()
        self._sentences: Counter[int] = Counter()
        self._event_keys: dict[str, list[bytes]] = {}  # article id -> its event keys
        self._holders: dict[bytes, list[str]] = {}  # event key -> article ids, kept sorted (a common word has many)
        self._links: dict[str, set[str]] = {}  # article id -> event-linked article ids
        if settings.bands >= 1 << _BAND_BITS:
            raise ValueError(f"the in-process index supports up to {(1 << _BAND_BITS) - 1} bands")
        self._band = np.arange(settings.bands, dtype=np.uint64)

    # -- bucket keys ------------------------------------------------------
    def _values(self, minhash: np.ndarray) -> np.ndarray:
        """One 32-bit value per band (``minhash`` rows: articles x num_perm, or one signature)."""
        rows = self.settings.rows
        m = np.asarray(minhash, dtype=np.uint64).reshape(-1, self.settings.bands, rows)
        if rows == 1:
            return m[:, :, 0]
        with np.errstate(over="ignore"):  # rows > 1: fold the band's values into one (FNV-style)
            v = np.full(m.shape[:2], 0xCBF29CE484222325, dtype=np.uint64)
            for r in range(rows):
                v = (v ^ m[:, :, r]) * np.uint64(0x100000001B3)
        return (v ^ (v >> np.uint64(32))) & np.uint64(0xFFFFFFFF)

    def _keys(self, values: np.ndarray, day_codes: np.ndarray) -> np.ndarray:
        """Bucket keys: values (n x bands) on day codes (n,) -> (n x bands) uint64."""
        return (day_codes.astype(np.uint64)[:, None] << np.uint64(_VALUE_BITS + _BAND_BITS)) | (
            values << np.uint64(_BAND_BITS)
        ) | self._band

    def _article_keys(self, sig: Signature) -> np.ndarray:
        """The bucket keys of one stored article."""
        return self._keys(self._values(sig.minhash), np.array([_day_code(sig.day)])).ravel()

    def _window_codes(self, day: int | None) -> list[int]:
        """Day codes a query on ``day`` reads: its window and undated, or every stored day when undated."""
        if day is None:
            return list(self._days)
        w = self.settings.window_days
        stored = self._days  # a day with nothing stored cannot match: skip its 32 look-ups
        if 2 * w + 1 > len(stored):  # a window longer than the stored days: walk those instead
            return [c for c in stored if c == _UNDATED or abs(c - 2 - day) <= w]
        return [c for c in (_UNDATED, *range(day + 2 - w, day + 3 + w)) if c in stored]

    def _query(self, values: np.ndarray, days: list[int | None]) -> tuple[np.ndarray, np.ndarray]:
        """Stored articles sharing a band within the window of each of n queries: (query, number) pairs."""
        owners, codes = [], []
        for i, day in enumerate(days):
            c = self._window_codes(day)
            codes += c
            owners += [i] * len(c)
        if not codes:
            return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
        owners_arr = np.asarray(owners, dtype=np.int64)
        keys = self._keys(values[owners_arr], np.asarray(codes, dtype=np.int64))
        q, nums = self._table.find(keys.ravel())
        # one pair per shared band: keep each (query, article) once
        pairs = np.unique(owners_arr[q // self.settings.bands] * len(self._ids) + nums)
        return pairs // len(self._ids), pairs % len(self._ids)

    # -- articles ---------------------------------------------------------
    def _store(self, entry: Entry) -> int:
        """Record an article (not yet in the buckets); returns its number."""
        num = len(self._ids)
        self._ids.append(entry.id)
        self._num[entry.id] = num
        self._entries[entry.id] = entry
        self._days[_day_code(entry.signature.day)] += 1
        self._sentences.update(set(entry.sentence_hashes))
        return num

    def put(self, entry: Entry) -> None:
        if entry.id in self._entries:
            self.delete(entry.id)
        num = self._store(entry)
        self._table.add(self._article_keys(entry.signature), np.full(self.settings.bands, num))

    def delete(self, article_id: str) -> Entry | None:
        entry = self._entries.pop(article_id, None)
        if entry is None:
            return None
        num = self._num.pop(article_id)
        self._ids[num] = None
        self._table.remove(self._article_keys(entry.signature), num)
        code = _day_code(entry.signature.day)
        self._days[code] -= 1
        if not self._days[code]:
            del self._days[code]
        for h in set(entry.sentence_hashes):
            left = self._sentences[h] - 1
            if left > 0:
                self._sentences[h] = left
            else:
                del self._sentences[h]
        story = self._story_of.pop(article_id, None)
        if story is not None:
            self._leave(story, [article_id])
        self._forget_keys(article_id)
        for other in self._links.pop(article_id, ()):
            linked = self._links.get(other)
            if linked is not None:
                linked.discard(article_id)
                if not linked:
                    del self._links[other]
        return entry

    def entries(self, ids: Iterable[str]) -> dict[str, Entry]:
        return {i: self._entries[i] for i in ids if i in self._entries}

    def signatures(self, ids: Iterable[str]) -> dict[str, Signature]:
        return {i: self._entries[i].signature for i in ids if i in self._entries}

    def __contains__(self, article_id: object) -> bool:
        return article_id in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    # -- candidates -------------------------------------------------------
    def candidates(self, signature: Signature) -> set[str]:
        _, nums = self._query(self._values(signature.minhash), [signature.day])
        ids = self._ids
        return {ids[n] for n in nums.tolist()}  # type: ignore[misc]  # live numbers only

    # -- reading for and writing a plan ----------------------------------------
    def read(self, run: Sequence[Entry]) -> list[Seen]:
        """The stored candidates of every fresh article of ``run`` from one table look-up."""
        out = [Seen(stored=e.id in self._entries) for e in run]
        fresh = [k for k, s in enumerate(out) if not s.stored]
        if not fresh:
            return out
        values = self._values(np.stack([run[k].signature.minhash for k in fresh]))
        q, nums = self._query(values, [run[k].signature.day for k in fresh])
        ids, stored, story_of = self._ids, self._entries, self._story_of
        for i, num in zip(q.tolist(), nums.tolist()):
            s = out[fresh[i]]
            c = ids[num]
            s.sigs[c] = stored[c].signature  # type: ignore[index]
            story = story_of.get(c)  # type: ignore[arg-type]
            if story is not None:
                s.stories[c] = story  # type: ignore[index]
        for k in fresh:
            out[k].own = self.members(run[k].id)
        return out

    def commit(self, run: Sequence[Entry], plan: RunPlan) -> None:
        """Store the planned articles and their stories in order, then their buckets in one insert."""
        if not plan.decisions:
            return
        for d in plan.decisions:
            e = run[d.at]
            self._store(e)
            folded = [e.id]
            for old in d.assignment.merged:
                folded.extend(self.members(old))
            self.set_story(d.assignment.story, folded)
        done = [run[d.at] for d in plan.decisions]
        values = self._values(np.stack([e.signature.minhash for e in done]))
        codes = np.asarray([_day_code(e.signature.day) for e in done], dtype=np.int64)
        nums = np.asarray([self._num[e.id] for e in done], dtype=np.int64)
        self._table.add(self._keys(values, codes).ravel(), np.repeat(nums, self.settings.bands))

    # -- stories ----------------------------------------------------------
    def story_of(self, ids: Iterable[str]) -> dict[str, str]:
        return {i: self._story_of[i] for i in ids if i in self._story_of}

    def members(self, story_id: str) -> list[str]:
        return sorted(self._members.get(story_id, ()))

    def set_story(self, story_id: str, ids: Iterable[str]) -> None:
        ids = list(ids)
        if len(ids) == 1 and ids[0] not in self._story_of:  # the common case: a new article starts or joins
            self._story_of[ids[0]] = story_id
            self._members.setdefault(story_id, set()).add(ids[0])
            self._touched[story_id] = next(self._clock)
            return
        by_old: dict[str, list[str]] = defaultdict(list)
        for i in ids:
            old = self._story_of.get(i)
            if old is not None and old != story_id:
                by_old[old].append(i)
        for old, moved in by_old.items():
            self._leave(old, moved)
        self._members.setdefault(story_id, set()).update(ids)
        for i in ids:
            self._story_of[i] = story_id
        self._touched[story_id] = next(self._clock)

    def _leave(self, story_id: str, ids: list[str]) -> None:
        members = self._members.get(story_id)
        if members is None:
            return
        members.difference_update(ids)
        if members:
            self._touched[story_id] = next(self._clock)
        else:
            del self._members[story_id]
            self._touched.pop(story_id, None)

    def story_ids(self) -> list[str]:
        return sorted(self._members, key=lambda s: -self._touched.get(s, 0))

    def story_versions(self, limit: int | None = None) -> list[tuple[str, int]]:
        """The change clock that orders ``story_ids`` is the version: every change ticks it."""
        ids = self.story_ids()
        if limit is not None:
            ids = ids[:limit]
        return [(sid, self._touched.get(sid, 0)) for sid in ids]

    def drop(self) -> int:
        n = len(self._entries)
        self.__init__(self.settings)  # type: ignore[misc]
        return n

    # -- event evidence ---------------------------------------------------
    def _forget_keys(self, article_id: str) -> None:
        for key in self._event_keys.pop(article_id, ()):
            holders = self._holders.get(key)
            if holders is None:
                continue
            at = bisect.bisect_left(holders, article_id)
            if at < len(holders) and holders[at] == article_id:
                del holders[at]
            if not holders:
                del self._holders[key]

    def add_event_keys(self, keys: Mapping[str, Sequence[bytes]]) -> None:
        for article_id, held in keys.items():
            self._forget_keys(article_id)
            held = list(dict.fromkeys(held))
            self._event_keys[article_id] = held
            for key in held:
                holders = self._holders.setdefault(key, [])
                at = bisect.bisect_left(holders, article_id)
                if at == len(holders) or holders[at] != article_id:
                    holders.insert(at, article_id)

    def event_keys(self, ids: Iterable[str]) -> dict[str, list[bytes]]:
        return {i: list(self._event_keys[i]) for i in ids if i in self._event_keys}

    def key_holders(self, keys: Iterable[bytes]) -> dict[bytes, list[str]]:
        return {k: list(self._holders[k]) for k in keys if k in self._holders}

    def add_event_links(self, pairs: Iterable[tuple[str, str]]) -> None:
        for a, b in pairs:
            if a != b:
                self._links.setdefault(a, set()).add(b)
                self._links.setdefault(b, set()).add(a)

    def event_links(self, ids: Iterable[str]) -> dict[str, list[str]]:
        return {i: sorted(self._links[i]) for i in ids if i in self._links}

    # -- boilerplate evidence ---------------------------------------------
    def sentence_counts(self, hashes: Iterable[int]) -> list[int]:
        return [self._sentences.get(h, 0) for h in hashes]
