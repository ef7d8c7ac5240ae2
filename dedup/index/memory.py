"""The in-process index: plain dicts, for the CLI's server-less batches and the tests."""

from __future__ import annotations

import itertools
from collections import Counter, defaultdict
from typing import Iterable

from ..records import Entry, Signature
from ..settings import Settings
from .base import StoryIndex


def within_window(a: int | None, b: int | None, window_days: int) -> bool:
    """Undated articles can match anything; dated ones only within the window."""
    return a is None or b is None or abs(a - b) <= window_days


class MemoryIndex(StoryIndex):
    """Everything in Python dicts; lost when the process ends."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._entries: dict[str, Entry] = {}
        # band bucket -> publication day (None when undated) -> ids: a query reads only the days in its window
        self._buckets: dict[tuple[int, object], dict[int | None, set[str]]] = {}
        self._story_of: dict[str, str] = {}
        self._members: dict[str, set[str]] = {}
        self._touched: dict[str, int] = {}
        self._clock = itertools.count()
        self._sentences: Counter[int] = Counter()

    # -- articles ---------------------------------------------------------
    def put(self, entry: Entry) -> None:
        if entry.id in self._entries:
            self.delete(entry.id)
        self._entries[entry.id] = entry
        day = entry.signature.day
        buckets = self._buckets
        for band in self._bands(entry.signature):
            by_day = buckets.get(band)
            if by_day is None:
                buckets[band] = {day: {entry.id}}
            elif day in by_day:
                by_day[day].add(entry.id)
            else:
                by_day[day] = {entry.id}
        self._sentences.update(set(entry.sentence_hashes))

    def delete(self, article_id: str) -> Entry | None:
        entry = self._entries.pop(article_id, None)
        if entry is None:
            return None
        day = entry.signature.day
        for band in self._bands(entry.signature):
            by_day = self._buckets.get(band)
            if by_day is None or day not in by_day:
                continue
            by_day[day].discard(article_id)
            if not by_day[day]:
                del by_day[day]
                if not by_day:
                    del self._buckets[band]
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

    def _bands(self, signature: Signature) -> list[tuple[int, object]]:
        """(band number, band value) keys: plain ints for one-row bands, tuples otherwise.

        In process there is no need for the bytes keys the Redis index stores;
        ``tolist()`` is one C call where 32 ``tobytes()`` were 32.
        """
        rows = self.settings.rows
        if rows == 1:
            return list(enumerate(signature.minhash.tolist()))
        values = signature.minhash.reshape(-1, rows).tolist()
        return [(i, tuple(v)) for i, v in enumerate(values)]

    # -- candidates -------------------------------------------------------
    def candidates(self, signature: Signature) -> set[str]:
        s = self.settings
        found: set[str] = set()
        day = signature.day
        days = None if day is None else [None, *range(day - s.window_days, day + s.window_days + 1)]
        buckets = self._buckets
        for band in self._bands(signature):
            by_day = buckets.get(band)
            if by_day is None:
                continue
            if days is None:  # undated: every day matches
                for ids in by_day.values():
                    found |= ids
            else:
                for d in days:
                    ids = by_day.get(d)
                    if ids:
                        found |= ids
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
