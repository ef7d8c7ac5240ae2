"""The Redis index on a real 3-master Redis Cluster, in the slot layout (``--redis-layout slot``).

Every key of an index carries the ``{namespace}`` hash tag, so the whole
index lives in one slot (correct, atomic scripts; no load spread within one
index).  Different namespaces land on different masters.  The spread layout,
the default on a cluster, is tested in ``test_index_spread.py``.
"""

from __future__ import annotations

import dataclasses
import time

import pytest
import redis
from redis.cluster import RedisCluster

from dedup.index.redis.slot import RedisIndex
from dedup.service import Deduper
from dedup.settings import Settings

from .test_index_redis import articles, cluster, partition

SETTINGS = Settings(redis_layout="slot")


def test_cluster_clusters_like_one_process_streaming_and_bulk(redis_cluster, seed_paths):
    url, nodes = redis_cluster
    items = articles(seed_paths, meter_n=150)
    mem = cluster(Deduper(), items)
    with Deduper(SETTINGS, url=url, namespace="cl1") as dd:
        assert isinstance(dd.index._r, RedisCluster)
        assert cluster(dd, items) == mem
    with Deduper(SETTINGS, url=url, namespace="cl1") as fresh:  # empty signature cache: reads them
        copy = dataclasses.replace(fresh.prepare(items[-1]), id="copy")
        assert fresh.index.ingest(copy).story == \
            fresh.index.story_of([items[-1].id])[items[-1].id]
    with Deduper(SETTINGS, url=url, namespace="cl2") as dd:
        outcomes = list(dd.add_many(items))
        assert all(o.error is None for o in outcomes)
        assert partition(dd.index.story_of([a.id for a in items])) == mem
        # the dashboard's batched reads (pipelines) work on a cluster and agree with one-by-one reads
        sids = dd.index.story_ids()
        assert dd.index.members_many(sids) == {s: dd.index.members(s) for s in sids}
        assert [s for s, _ in dd.index.story_versions()] == sids
        # deleting goes through the scripts too
        dd.delete(items[0].id)
        assert items[0].id not in dd.index
        assert [s for s, _ in dd.index.story_versions()] == dd.index.story_ids()


def test_cluster_keeps_a_namespace_in_one_slot_and_spreads_namespaces(redis_cluster):
    url, nodes = redis_cluster
    from .test_index_redis import entry

    owners = set()
    for ns in ("sp0", "sp1", "sp2", "sp3", "sp4", "sp5", "sp6", "sp7"):
        with RedisIndex(SETTINGS, url=url, namespace=ns) as idx:
            idx.put(entry("a", 1))
            idx.put(entry("b", 1))
    for n in nodes:
        c = redis.Redis(port=n.port)
        for ns in ("sp0", "sp1", "sp2", "sp3", "sp4", "sp5", "sp6", "sp7"):
            keys = c.keys(f"{{{ns}}}:*")
            if keys:
                slots = {c.cluster("keyslot", k) for k in keys}
                assert len(slots) == 1 and len(keys) > 10  # all of the namespace, one slot, this node
                owners.add(n.port)
        c.close()
    assert len(owners) >= 2  # 8 namespaces do not all land on one master


def ride_out_failover(base, seed_paths, layout: str, node_timeout_ms: int, retry_s: float) -> float:
    """3 masters with a replica each; the master serving the namespace's meta key (in the spread layout: its
    story slot) is killed between two batches of one client.  Checks that the client goes on once the
    replica took over and ends with every article and the one-process stories; returns how long the
    second batch took (the wait included)."""
    from .conftest import start_cluster, wait_cluster_ok

    settings = dataclasses.replace(SETTINGS, redis_layout=layout, redis_retry_s=retry_s)
    nodes = start_cluster(base, replicas=1, node_timeout_ms=node_timeout_ms)
    try:
        items = articles(seed_paths, meter_n=120)
        first, rest = items[:60], items[60:]
        url = f"redis+cluster://127.0.0.1:{nodes[0].port}"
        with Deduper(settings, url=url, namespace="fo") as dd:
            assert all(o.error is None for o in dd.add_many(first))
            r = dd.index._r
            owner = r.get_node_from_key(dd.index._meta_key)
            node = next(n for n in nodes if n.port == owner.port)
            direct = redis.Redis(port=node.port)
            # what the replica has is what a failover keeps; its first sync can take a while (Redis delays a
            # diskless sync by 5 s, and with a 15 s node timeout the cluster settles more slowly)
            assert direct.wait(1, 30000) == 1
            direct.close()
            node.stop(kill=True)
            started = time.monotonic()
            outcomes = list(dd.add_many(rest))
            took = time.monotonic() - started
            assert [o.error for o in outcomes if o.error is not None] == []
            wait_cluster_ok([n for n in nodes if n is not node])
            assert r.get_node_from_key(dd.index._meta_key).port != node.port  # a replica serves it now
            ids = [a.id for a in items]
            assert len(dd.index) == len(items)
            assert partition(dd.index.story_of(ids)) == cluster(Deduper(), items)
            return took
    finally:
        for n in nodes:
            n.stop()


@pytest.mark.parametrize("layout", ["slot", "spread"])
def test_ingest_rides_out_the_failover_of_the_master_holding_the_index(tmp_path, seed_paths, layout):
    """Nothing written before the kill (and replicated) is lost, and the same client goes on (capped
    backoff, then the new slot map) once the replica took over: a 1 s node timeout, the default 5 s of
    retries."""
    ride_out_failover(tmp_path / "failover", seed_paths, layout, node_timeout_ms=1000, retry_s=5.0)


@pytest.mark.parametrize("layout", ["slot", "spread"])
def test_a_failover_after_redis_default_node_timeout_is_ridden_out_with_retries_to_match(tmp_path, seed_paths,
                                                                                         layout):
    """With Redis's default cluster-node-timeout (15 s) a replica takes over some 16-22 s after its master
    died: longer than the default 5 s of retries, so --redis-retry-s has to cover it (docs/redis.md,
    "Failover on a Redis Cluster").  With 40 s the client waits it out and loses nothing."""
    took = ride_out_failover(tmp_path / "failover15", seed_paths, layout, node_timeout_ms=15000, retry_s=40.0)
    assert took > 15  # it really waited for the failover
