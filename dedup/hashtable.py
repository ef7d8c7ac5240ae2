"""A multimap from 64-bit keys to row numbers, held in two numpy arrays.

The in-process index keeps its LSH buckets here and signing its word
table.  Python dicts would take ~96 look-ups per article, each a few cache
misses in a structure of ~2.5 kB per article (dict slots plus an int
object per key).  This is an open-addressing table (linear probing) of ``uint64`` keys
and ``int64`` article numbers: 16 bytes a slot, and a whole batch of keys
is looked up or inserted with a few vectorized probes, so the CPU overlaps
the cache misses instead of taking them one after another.

A key may hold several article numbers: each (key, number) pair takes its
own slot, and a look-up walks the key's probe run up to the first empty
slot.  Removal leaves a tombstone (number -1) so probe runs stay intact;
tombstones are dropped when the table grows.
"""

from __future__ import annotations

import numpy as np

_MIX = (np.uint64(33), np.uint64(0xFF51AFD7ED558CCD), np.uint64(0xC4CEB9FE1A85EC53))
_EMPTY = np.uint64(0)  # keys are never 0 (callers guarantee it)
_DEAD = -1
_TAIL = 24  # pairs or queries left when probing switches from numpy rounds to a plain loop


def fmix64(keys: np.ndarray) -> np.ndarray:
    """The murmur3 64-bit finalizer: well-mixed bits of each key (here keys are packed fields, not
    uniform; signing also keys tokens with it)."""
    s, m1, m2 = _MIX
    with np.errstate(over="ignore"):
        h = keys ^ (keys >> s)
        h = h * m1
        h = h ^ (h >> s)
        h = h * m2
        return h ^ (h >> s)


class BandTable:
    """``key -> numbers`` (article numbers of LSH buckets, rows of the word table); keys are non-zero ``uint64``."""

    def __init__(self, capacity: int = 1 << 12) -> None:
        self._allocate(max(16, 1 << (capacity - 1).bit_length()))
        self.live = 0

    def _allocate(self, size: int) -> None:
        self.keys = np.zeros(size, dtype=np.uint64)
        self.nums = np.full(size, _DEAD, dtype=np.int64)
        self.mask = size - 1
        self.used = 0  # slots holding a key, tombstones included

    def __len__(self) -> int:
        return self.live

    def add(self, keys: np.ndarray, nums: np.ndarray) -> None:
        """Insert the pairs ``(keys[i], nums[i])`` (a pair may repeat a key already stored)."""
        if not len(keys):
            return
        if 2 * (self.used + len(keys)) > len(self.keys):
            self._grow(len(keys))
        self._place(keys.astype(np.uint64, copy=False), nums.astype(np.int64, copy=False))
        self.used += len(keys)
        self.live += len(keys)

    def _place(self, keys: np.ndarray, nums: np.ndarray) -> None:
        slot = (fmix64(keys) & np.uint64(self.mask)).astype(np.int64)
        todo = np.arange(len(keys))
        while len(todo) > _TAIL:
            free = np.flatnonzero(self.keys[slot[todo]] == _EMPTY)
            if len(free):
                # Several pending pairs may want the same free slot.  Each writes its own index
                # into the slot's number; the one whose index stays there takes the slot.
                want = todo[free]
                self.nums[slot[want]] = want
                took = self.nums[slot[want]] == want
                won = want[took]
                self.keys[slot[won]] = keys[won]
                self.nums[slot[won]] = nums[won]
                rest = np.ones(len(todo), dtype=bool)
                rest[free[took]] = False
                todo = todo[rest]
            # every pair left sits on a taken slot now: step to the next one
            slot[todo] = (slot[todo] + 1) & self.mask
        # the last few walk long probe runs: a plain loop beats a dozen more rounds of numpy calls
        table, mask = self.keys, self.mask
        for i in todo.tolist():
            at = int(slot[i])
            while table[at] != _EMPTY:
                at = (at + 1) & mask
            table[at] = keys[i]
            self.nums[at] = nums[i]

    def _grow(self, extra: int) -> None:
        """Re-build in a larger table without the tombstones.

        Into an empty table, linear probing places pairs sorted by home slot
        at ``max(home, previous place + 1)``: one sort and one running
        maximum instead of probing round after round.  Pairs pushed past the
        end wrap around through :meth:`_place`.
        """
        alive = self.nums >= 0
        keys, nums = self.keys[alive], self.nums[alive]
        old_bits = (len(self.keys) - 1).bit_length()
        size = len(self.keys)
        while 2 * (len(keys) + extra) > size:
            size *= 2
        self._allocate(size)
        home = (fmix64(keys) & np.uint64(self.mask)).astype(np.int64)
        # In slot order the old homes are sorted but for short probe displacements, so splitting by
        # the home's new high bits (a radix sort of small ints) leaves a nearly sorted sequence, which
        # the stable sort (timsort) orders in close to linear time: ~50x faster than on random order.
        by_high = np.argsort((home >> old_bits).astype(np.uint16), kind="stable")  # size / old size < 2**16
        order = by_high[np.argsort(home[by_high], kind="stable")]
        keys, nums, home = keys[order], nums[order], home[order]
        step = np.arange(len(home))
        place = np.maximum.accumulate(home - step) + step
        inside = place < size
        self.keys[place[inside]] = keys[inside]
        self.nums[place[inside]] = nums[inside]
        if not inside.all():
            self._place(keys[~inside], nums[~inside])
        self.used = len(keys)

    def _walk(self, keys: np.ndarray, first: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Every slot whose key equals one of ``keys``, live or dead: (query index, slot) pairs.

        ``first``: stop at a key's first slot (for a table where each key is stored once).
        """
        slot = (fmix64(keys) & np.uint64(self.mask)).astype(np.int64)
        todo = np.arange(len(keys))
        found_q: list[np.ndarray] = []
        found_s: list[np.ndarray] = []
        want = keys
        while len(todo) > _TAIL:
            held = self.keys[slot]
            hit = held == want
            if hit.any():
                found_q.append(todo[hit])
                found_s.append(slot[hit])
            go_on = held != _EMPTY
            if first:
                go_on &= ~hit
            todo, want, slot = todo[go_on], want[go_on], (slot[go_on] + 1) & self.mask
        table, mask = self.keys, self.mask
        tail_q, tail_s = [], []
        for q, key, at in zip(todo.tolist(), want.tolist(), slot.tolist()):
            while True:
                held = int(table[at])
                if held == 0:
                    break
                if held == key:
                    tail_q.append(q)
                    tail_s.append(at)
                    if first:
                        break
                at = (at + 1) & mask
        if tail_q:
            found_q.append(np.asarray(tail_q, dtype=np.int64))
            found_s.append(np.asarray(tail_s, dtype=np.int64))
        if not found_q:
            return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
        return np.concatenate(found_q), np.concatenate(found_s)

    def find(self, keys: np.ndarray, unique: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Live matches of ``keys``: arrays (query index, number), one entry per stored pair.

        ``unique``: the caller stores each key once, so a look-up may stop at its first match.
        """
        q, s = self._walk(keys.astype(np.uint64, copy=False), first=unique)
        nums = self.nums[s]
        alive = nums >= 0
        return q[alive], nums[alive]

    def remove(self, keys: np.ndarray, num: int) -> None:
        """Drop the pairs ``(key, num)`` for each of ``keys`` (absent pairs are ignored)."""
        _, s = self._walk(keys.astype(np.uint64, copy=False))
        s = s[self.nums[s] == num]
        self.nums[s] = _DEAD
        self.live -= len(s)
        if self.live == 0:  # nothing left: start again small rather than keep tombstones
            self._allocate(16)
