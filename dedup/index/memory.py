"""The in-process index: plain dicts, for the CLI's server-less batches and the tests."""

from __future__ import annotations

import itertools
from collections import Counter, defaultdict
from typing import Iterable, Sequence

from ..records import Entry, Signature
from ..settings import Settings
from .base import StoryIndex


def _day_code(day: int | None) -> int:
    return 0 if day is None else day + 1


def within_window(a: int | None, b: int | None, window_days: int) -> bool:
    """Undated articles can match anything; dated ones only within the window."""
    return a is None or b is None or abs(a - b) <= window_days


_DAY_BITS = 23  # day codes: 0 = undated, ordinal + 1 otherwise (ordinals stay below 2**22)
_BAND_BITS = 9  # up to 512 bands


class MemoryIndex(StoryIndex):
    """Everything in Python dicts; lost when the process ends.

    LSH buckets are one flat dict keyed by a single int that packs the band
    number, the band's value and the publication day, so a query for the
    days of the window is a few plain dict look-ups.  A bucket's value is
    the article id itself while it holds one article (most buckets do) and
    a list once it holds more: at 100k articles the nested dict-of-sets this
    replaces allocated two containers per band per article, which made
    ``put`` the slowest step of ingest and most of the peak memory.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._entries: dict[str, Entry] = {}
        self._buckets: dict[object, str | list[str]] = {}
        self._days: Counter[int] = Counter()  # day code -> articles stored (undated queries read them all)
        self._story_of: dict[str, str] = {}
        self._members: dict[str, set[str]] = {}
        self._touched: dict[str, int] = {}
        self._clock = itertools.count()
        self._sentences: Counter[int] = Counter()
        if settings.bands >= 1 << _BAND_BITS:
            raise ValueError(f"the in-process index supports up to {(1 << _BAND_BITS) - 1} bands")

    # -- articles ---------------------------------------------------------
    def put(self, entry: Entry) -> None:
        if entry.id in self._entries:
            self.delete(entry.id)
        self._entries[entry.id] = entry
        code = _day_code(entry.signature.day)
        self._days[code] += 1
        buckets = self._buckets
        aid = entry.id
        for key in self._keys(entry.signature, (code,)):
            held = buckets.get(key)
            if held is None:
                buckets[key] = aid
            elif type(held) is str:
                buckets[key] = [held, aid]
            else:
                held.append(aid)
        self._sentences.update(set(entry.sentence_hashes))

    def delete(self, article_id: str) -> Entry | None:
        entry = self._entries.pop(article_id, None)
        if entry is None:
            return None
        code = _day_code(entry.signature.day)
        self._days[code] -= 1
        if not self._days[code]:
            del self._days[code]
        buckets = self._buckets
        for key in self._keys(entry.signature, (code,)):
            held = buckets.get(key)
            if held is None:
                continue
            if type(held) is str:
                if held == article_id:
                    del buckets[key]
            elif article_id in held:
                held.remove(article_id)
                if len(held) == 1:
                    buckets[key] = held[0]
        for h in set(entry.sentence_hashes):
            left = self._sentences[h] - 1
            if left > 0:
                self._sentences[h] = left
            else:
                del self._sentences[h]
        story = self._story_of.pop(article_id, None)
        if story is not None:
            self._leave(story, [article_id])
        return entry

    def entries(self, ids: Iterable[str]) -> dict[str, Entry]:
        return {i: self._entries[i] for i in ids if i in self._entries}

    def signatures(self, ids: Iterable[str]) -> dict[str, Signature]:
        return {i: self._entries[i].signature for i in ids if i in self._entries}

    def __contains__(self, article_id: object) -> bool:
        return article_id in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    def _keys(self, signature: Signature, codes: Sequence[int]) -> list:
        """Bucket keys of a signature's bands on the given day codes.

        One-row bands (the default) pack band, value and day into one int
        (plain int arithmetic: cheaper than numpy for 32 values); wider
        bands use tuples.
        """
        if self.settings.rows == 1:
            base = [(v << _BAND_BITS | band) << _DAY_BITS for band, v in enumerate(signature.minhash.tolist())]
            if len(codes) == 1:  # type: ignore[arg-type]
                (code,) = codes
                return [b | code for b in base]
            return [b | c for b in base for c in codes]
        values = [tuple(v) for v in signature.minhash.reshape(-1, self.settings.rows).tolist()]
        return [(band, v, code) for band, v in enumerate(values) for code in codes]

    # -- candidates -------------------------------------------------------
    def candidates(self, signature: Signature) -> set[str]:
        day = signature.day
        days = self._days
        if day is None:  # undated: every day matches
            codes = list(days)
        else:  # the window's days and the undated, where any are stored
            w = self.settings.window_days
            codes = [c for c in (0, *range(day + 1 - w, day + w + 2)) if c in days]
        found: set[str] = set()
        get = self._buckets.get
        for key in self._keys(signature, codes):
            held = get(key)
            if held is not None:
                if type(held) is str:
                    found.add(held)
                else:
                    found.update(held)
        return found

    # -- stories ----------------------------------------------------------
    def story_of(self, ids: Iterable[str]) -> dict[str, str]:
        return {i: self._story_of[i] for i in ids if i in self._story_of}

    def members(self, story_id: str) -> list[str]:
        return sorted(self._members.get(story_id, ()))

    def set_story(self, story_id: str, ids: Iterable[str]) -> None:
        ids = list(ids)
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

    # -- boilerplate evidence ---------------------------------------------
    def sentence_counts(self, hashes: Iterable[int]) -> list[int]:
        return [self._sentences.get(h, 0) for h in hashes]
