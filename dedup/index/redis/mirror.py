"""A client's copy of the LSH buckets of the articles it knows, to guess what FIND will answer.

A streamed article takes two round trips when it has candidates: FIND reads
them, the client verifies and decides, INGEST writes.  But the articles that
share a bucket with a new one are, on a single worker, almost always articles
this client wrote or read moments ago.  When the copy says which candidates
FIND will find (and their stories), the client decides first and sends the
decision with FIND (mode 4).  The script compares what it finds with what the
client expected and writes the decision only when they are equal (same
handles, same stories, the id not stored, no story named after it): one round
trip in all.  Otherwise it answers as FIND always does and the ingest goes on
as before.

So the copy can cost time, never correctness.  An article it lacks (written by
another process, evicted), a deletion or a story move it missed, each makes the
expectation differ; the answer then teaches the copy the truth for those
buckets.  When guesses keep missing (several workers on one stream, where most
candidates come from the others), :meth:`BucketMirror.worth_guessing` stops
guessing but for an occasional probe, so a miss's cost (a decision made for
nothing) stays small.

The copy applies FIND's filter itself (:func:`~dedup.index.redis.keys.tag_within`
on the entries' day tags), so the two agree on which entries are candidates.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from .keys import UNDATED_TAG, day_tag

# how many guesses the hit rate averages over, and how often a worker that stopped guessing tries again
_RATE_SPAN = 16
_PROBE_EVERY = 32


class BucketMirror:
    """Bucket key -> handles, for up to ``capacity`` articles (oldest evicted first), with their day tags
    and stories.

    Keys are the bucket fields as the scripts name them (``RedisIndex._fields``: u16 band + the band's
    values), handles the 4-byte handles FIND answers.
    """

    def __init__(self, capacity: int, field_width: int) -> None:
        self.capacity = capacity
        self.field_width = field_width
        # Tuples and dicts of bytes, not lists and sets: the garbage collector stops tracking a tuple or
        # dict that holds only strings, so the copy adds nothing to the objects every full collection
        # walks.  With a list per bucket and a set per story (17 tracked objects per article), full
        # collections cost a streamed article ~20 us, about 5% of its time.
        self._buckets: dict[bytes, tuple[bytes, ...]] = {}
        self._keys: dict[bytes, tuple[bytes, ...]] = {}  # handle -> its bucket keys; insertion order = age
        self._tag: dict[bytes, int] = {}
        self._story: dict[bytes, str] = {}
        self._members: dict[str, dict[bytes, None]] = {}  # story -> handles of it in the copy (a dict as a set)
        self._hit_rate = 1.0
        self._since_probe = 0

    def __len__(self) -> int:
        return len(self._keys)

    def __contains__(self, handle: object) -> bool:
        return handle in self._keys

    def keys(self, packed: bytes) -> list[bytes]:
        """The bucket keys in ``packed`` (the fields of all bands back to back); none when the copy is off,
        which keeps nothing anyway."""
        if self.capacity <= 0:
            return []
        w = self.field_width
        return [packed[i:i + w] for i in range(0, len(packed), w)]

    # -- what the copy holds -------------------------------------------------------
    def add(self, handle: bytes, keys: list[bytes], day: int | None, story: str) -> None:
        """An article stored with these bucket keys (a known one only takes the story)."""
        if handle in self._keys:
            self._set_story(handle, story)
            return
        while len(self._keys) >= self.capacity > 0:
            self.discard(next(iter(self._keys)))
        if self.capacity <= 0:
            return
        self._keys[handle] = tuple(keys)
        buckets = self._buckets
        one = (handle,)
        for k in keys:
            buckets[k] = buckets[k] + one if k in buckets else one
        self._tag[handle] = day_tag(day)
        self._story[handle] = story
        self._members.setdefault(story, {})[handle] = None

    def discard(self, handle: bytes) -> None:
        keys = self._keys.pop(handle, None)
        if keys is None:
            return
        buckets = self._buckets
        for k in keys:
            rest = tuple(h for h in buckets[k] if h != handle)
            if rest:
                buckets[k] = rest
            else:
                del buckets[k]
        del self._tag[handle]
        self._leave(handle, self._story.pop(handle))

    def clear(self) -> None:
        """Forget everything (a write this copy cannot follow: deletes, re-splits, a new epoch)."""
        self._buckets.clear()
        self._keys.clear()
        self._tag.clear()
        self._story.clear()
        self._members.clear()

    def _leave(self, handle: bytes, story: str) -> None:
        members = self._members.get(story)
        if members is not None:
            members.pop(handle, None)
            if not members:
                del self._members[story]

    def _set_story(self, handle: bytes, story: str) -> None:
        old = self._story.get(handle)
        if old is None or old == story:
            return
        self._leave(handle, old)
        self._story[handle] = story
        self._members.setdefault(story, {})[handle] = None

    def merged(self, story: str, merged: list[str]) -> None:
        """Every member of the ``merged`` stories moved into ``story`` (as INGEST's join_story does)."""
        for old in merged:
            for h in list(self._members.get(old, ())):
                self._set_story(h, story)

    def written(self, handle: bytes, keys: list[bytes], day: int | None, story: str, merged: list[str]) -> None:
        """This client's write, as the script made it: the article in ``story``, the ``merged`` stories
        folded into it."""
        if self.capacity > 0:
            self.merged(story, merged)
            self.add(handle, keys, day, story)

    # -- guessing ------------------------------------------------------------------
    def expect(self, keys: list[bytes], day: int | None, window: int) -> dict[bytes, str]:
        """The candidates FIND will answer for an article with these keys and day, if the copy is complete:
        handle -> story.  The window test is keys.tag_within: for a window of up to 64 days as the
        set of day tags it lets through (popular buckets hold dozens of handles, most of them outside the
        window, and a set lookup is the cheapest test), else inlined."""
        seen: dict[bytes, str | None] = {}  # handle -> its story, None when outside the window
        buckets, tags, story = self._buckets, self._tag, self._story
        if day is None or window >= 32767:
            for k in keys:
                for h in buckets.get(k, ()):
                    if h not in seen:
                        seen[h] = story[h]
            return seen  # type: ignore[return-value]
        t0 = day_tag(day)
        if window <= 64:
            near = {(t0 + d) % 65535 for d in range(-window, window + 1)}
            near.add(UNDATED_TAG)
            for k in keys:
                for h in buckets.get(k, ()):
                    if h not in seen:
                        seen[h] = story[h] if tags[h] in near else None
        else:
            for k in keys:
                for h in buckets.get(k, ()):
                    if h not in seen:
                        t = tags[h]
                        d = abs(t - t0)
                        seen[h] = story[h] if t == UNDATED_TAG or d <= window or 65535 - d <= window else None
        return {h: s for h, s in seen.items() if s is not None}

    def learn(self, keys: list[bytes], day: int | None, window: int, found: Mapping[bytes, str],
              lacking: Callable[[bytes], tuple[list[bytes], int | None] | None] = lambda h: None) -> None:
        """FIND's answer for these keys: the copy's handles it did not find are gone, the stories of those
        it found are what it says, and those it lacks come in when ``lacking(handle)`` gives their keys
        and day (the client can when it holds their signatures)."""
        if self.capacity <= 0:
            return
        for h in self.expect(keys, day, window):
            if h not in found:
                self.discard(h)
        for h, story in found.items():
            if h in self._keys:
                self._set_story(h, story)
            else:
                known = lacking(h)
                if known is not None:
                    self.add(h, known[0], known[1], story)

    def expected(self, keys: list[bytes], day: int | None, window: int,
                 have: Mapping[bytes, object]) -> dict[bytes, str] | None:
        """:meth:`expect`, when a guess is worth making (see :meth:`worth_guessing`) and ``have`` (the
        client's signatures by handle) holds every expected candidate; else None."""
        if not self._keys or not self.worth_guessing():
            return None
        out = self.expect(keys, day, window)
        return out if all(h in have for h in out) else None

    def worth_guessing(self) -> bool:
        """Guess while most guesses hit; after a run of misses, only every ``_PROBE_EVERY``-th article."""
        if self._hit_rate >= 0.5:
            return True
        self._since_probe += 1
        if self._since_probe < _PROBE_EVERY:
            return False
        self._since_probe = 0
        return True

    def scored(self, hit: bool) -> None:
        """A guess was sent: did the script write it?"""
        self._hit_rate += (float(hit) - self._hit_rate) / _RATE_SPAN
