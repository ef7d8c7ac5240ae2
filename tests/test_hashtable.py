"""The numpy multimap behind the in-process LSH buckets, checked against a plain dict of lists."""

from __future__ import annotations

import random
from collections import defaultdict

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from dedup.hashtable import BandTable


def _lookup(table: BandTable, keys: list[int]) -> dict[int, list[int]]:
    q, nums = table.find(np.asarray(keys, dtype=np.uint64))
    got: dict[int, list[int]] = defaultdict(list)
    for i, n in zip(q.tolist(), nums.tolist()):
        got[keys[i]].append(n)
    return got


def test_a_key_holds_every_article_added_under_it_until_removed():
    t = BandTable()
    t.add(np.array([5, 6, 5], dtype=np.uint64), np.array([1, 1, 2]))
    assert sorted(_lookup(t, [5])[5]) == [1, 2] and _lookup(t, [6])[6] == [1]
    t.remove(np.array([5, 6], dtype=np.uint64), 1)
    assert _lookup(t, [5, 6]) == {5: [2]}
    assert len(t) == 1


def test_removing_everything_leaves_an_empty_small_table():
    t = BandTable()
    keys = np.arange(1, 5000, dtype=np.uint64)
    t.add(keys, np.zeros(len(keys), dtype=np.int64))
    t.remove(keys, 0)
    assert len(t) == 0 and len(t.keys) == 16


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["add", "remove"]), st.integers(0, 40), st.integers(1, 300)), max_size=40),
       st.integers(0, 2**32))
def test_matches_a_dict_of_lists_through_adds_removes_and_growth(ops, seed):
    """Small key ranges force long probe runs and shared keys; large batches force growth."""
    rnd = random.Random(seed)
    table, ref = BandTable(16), defaultdict(list)
    for n, (op, article, size) in enumerate(ops):
        if op == "add":
            num = n  # a fresh article number
            keys = sorted({rnd.choice([rnd.randint(1, 60), rnd.getrandbits(63) | 1]) for _ in range(size)})
            table.add(np.asarray(keys, dtype=np.uint64), np.full(len(keys), num))
            for k in keys:
                ref[k].append(num)
        else:
            victims = sorted({v for vs in ref.values() for v in vs})
            if not victims:
                continue
            num = victims[article % len(victims)]
            keys = [k for k, vs in ref.items() if num in vs]
            table.remove(np.asarray(keys, dtype=np.uint64), num)
            for k in keys:
                ref[k].remove(num)
        probe = list(ref)[:400] + [2**63 + 5]
        got = _lookup(table, probe)
        assert {k: sorted(got.get(k, [])) for k in probe} == {k: sorted(ref.get(k, [])) for k in probe}
        assert len(table) == sum(map(len, ref.values()))
