"""Errors of the Redis index and the guard that turns Redis's failures into them.

Every public method of :class:`~dedup.index.redis.RedisIndex` runs under :func:`guarded`, so the CLI, the
worker and the dashboard see an error of the core whatever went wrong underneath: :class:`IndexUnavailable`
(the server, the connection or a slot: retry later; :class:`AccessDenied`, a refused password or ACL,
is one too), :class:`IndexFull` (the server is at its ``maxmemory``), :class:`IndexMismatch` (the namespace
belongs to other settings) or :class:`EvictionUnsafe` (the server may evict the index's keys).  Kept apart
from the index so the rules for what is retried, redone or reported live in one place.
"""

from __future__ import annotations

import functools
import logging
import time
from typing import TYPE_CHECKING, Any, Callable, TypeVar
from urllib.parse import urlsplit

import redis
from redis.cluster import RedisCluster
from redis.exceptions import NoPermissionError, OutOfMemoryError, RedisClusterException
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.exceptions import TryAgainError

from ...records import AccessDenied, DedupError, EvictionUnsafe, IndexFull, IndexUnavailable
from ...urls import mask_url

if TYPE_CHECKING:
    from .slot import RedisIndex

T = TypeVar("T")

log = logging.getLogger("dedup.index")

EPOCH_MOVED = "DEDUP-EPOCH"  # a story-slot script refused the epoch this client sent (see RedisIndex._claim)
CLAIM_ATTEMPTS = 3  # calls redone after the namespace emptied and was claimed again meanwhile


# The Redis commands the index sends, itself and from its scripts (Redis checks a script's calls against
# the caller's ACL too), by ACL name; INFO only reads maxmemory-policy on open (see check_eviction).
ACL_COMMANDS = (
    "eval", "evalsha", "script|load", "ping", "info", "multi", "exec",
    "get", "set", "mget", "del", "exists", "copy", "rename", "incr", "decr", "time",
    "hget", "hmget", "hset", "hsetnx", "hdel", "hexists", "hlen", "hkeys", "hgetall", "hincrby",
    "zadd", "zrem", "zscore", "zcard", "zrevrange", "zrangebyscore",
)


def acl_rule(namespace: str) -> str:
    """The least an ACL user needs to run the index of ``namespace``: its keys (``{ns}:*``, and the band
    groups' ``{ns:b<group>...}:*`` of the spread layout) and the commands of :data:`ACL_COMMANDS`."""
    return (f"resetkeys ~{{{namespace}}}:* ~{{{namespace}:b*}}:* resetchannels -@all "
            + " ".join("+" + c for c in ACL_COMMANDS))


def _user(url: str) -> str:
    return urlsplit(url).username or "default"


def _server_reply(exc: BaseException) -> str:
    """Redis's own words, without the arguments redis-py quotes for a failed pipelined command (records)."""
    text = str(exc)
    return text.split("caused error: ", 1)[1] if "caused error: " in text else text


def access_denied(url: str, namespace: str, exc: BaseException) -> AccessDenied:
    """The error for a NOPERM reply: the user's ACL does not cover this namespace or one of the commands."""
    user = _user(url)
    return AccessDenied(
        f"Redis at {mask_url(url)} refused user {user!r} on namespace {namespace!r}: {_server_reply(exc)}. "
        f"The user's ACL must allow the namespace's key patterns ~{{{namespace}}}:* ~{{{namespace}:b*}}:* and "
        f"the index's commands: use a namespace the user may access (--namespace), or grant them with "
        f"ACL SETUSER {user} {acl_rule(namespace)} (docs/redis.md, \"Running with TLS and ACLs\")")


def _memory(client: Any) -> dict[str, Any]:
    """INFO memory of a server (of one master, on a cluster); empty when it cannot be read."""
    try:
        info = client.info("memory")
    except (redis.RedisError, RedisClusterException):
        return {}
    if isinstance(info, dict) and "maxmemory_policy" not in info:  # a cluster answers per node
        info = next((v for v in info.values() if isinstance(v, dict)), {})
    return info if isinstance(info, dict) else {}


def out_of_memory(client: Any, url: str, namespace: str) -> IndexFull:
    """The error for an OOM reply.

    Nothing of the refused write is in the index, and no article is half written, because a script
    runs whole or not at all.  Redis 7 refuses a script without ``#!lua flags=`` (the index's story-slot
    scripts) only at its first command that may grow memory, and only if it has written nothing yet:
    once a script has written, Redis lets it finish, even past ``maxmemory``.  In the slot layout an
    article is one script.  In the spread layout it is a commit in the story slot (S_COMMIT, whose
    first write is such a command) and then its buckets (BAND), which complete what was committed and
    are declared ``#!lua flags=allow-oom`` so that a full server takes them.  Late links (S_LINK, only
    with concurrent writers) may be refused; their todo entries stay, and the sweep makes them.
    Articles stored before the refusal are complete, so a run after memory was freed stores the rest
    and reports those ``unchanged``."""
    mem = _memory(client)
    limit = f" of {mem['maxmemory_human']}" if mem.get("maxmemory_human") else ""
    policy = f", policy {mem['maxmemory_policy']}" if mem.get("maxmemory_policy") else ""
    return IndexFull(
        f"Redis at {mask_url(url)} is out of memory: it refused a write to namespace {namespace!r} because its "
        f"used memory is over its maxmemory{limit}{policy}. Nothing of the refused write was stored. Raise "
        "maxmemory (CONFIG SET maxmemory <bytes>, or maxmemory in redis.conf), or free memory (delete another "
        "namespace, or use a namespace on another server), then run again: articles already stored come "
        "back unchanged")


def refused(client: Any, url: str, namespace: str, exc: BaseException) -> DedupError | None:
    """The core's error for a reply no retry cures (out of memory, no permission); None for others."""
    if isinstance(exc, OutOfMemoryError):
        return out_of_memory(client, url, namespace)
    if isinstance(exc, NoPermissionError) or "the user executing the script can't" in str(exc).lower():
        return access_denied(url, namespace, exc)
    return None


# maxmemory policies that may evict any key: an index's keys have no expiry, so volatile-* leave them alone
def _evicts_any_key(policy: str) -> bool:
    return policy.startswith("allkeys-")


def check_eviction(client: Any, url: str, allow: bool) -> None:
    """Refuse a server whose ``maxmemory-policy`` may evict the index's keys, unless ``allow``.

    An evicted record, bucket or story hash is not an error anywhere: articles silently stop matching or
    drop out of their stories.  The policy is read with INFO (CONFIG GET when INFO is refused); a
    server that answers neither (a managed Redis) is used with a warning."""
    policies: set[str] = set()
    problem = ""
    try:
        info = client.info("memory")
        nodes = [info] if "maxmemory_policy" in info else [v for v in info.values() if isinstance(v, dict)]
        policies = {str(n.get("maxmemory_policy", "")) for n in nodes} - {""}
    except (redis.ResponseError, RedisClusterException) as exc:
        problem = f"INFO: {_server_reply(exc)}"
    if not policies:
        try:
            got = client.config_get("maxmemory-policy")
            values = got.values() if isinstance(got, dict) else []
            policies = {v if isinstance(v, str) else (v.get("maxmemory-policy", "") if isinstance(v, dict) else "")
                        for v in values} - {""}
        except (redis.ResponseError, RedisClusterException) as exc:
            problem += f"; CONFIG GET: {_server_reply(exc)}"
    if not policies:
        log.warning("cannot read the maxmemory-policy of Redis at %s (%s); if it may evict keys (allkeys-*), "
                    "the index loses articles without an error: make sure it runs with noeviction",
                    mask_url(url), problem.strip("; ") or "no answer")
        return
    evicting = sorted(p for p in policies if _evicts_any_key(p))
    if not evicting:
        return
    if allow:
        log.warning("Redis at %s runs with maxmemory-policy %s: at maxmemory it evicts keys of the index, "
                    "whose stories then go wrong without an error (allowed by --redis-allow-eviction)",
                    mask_url(url), evicting[0])
        return
    raise EvictionUnsafe(
        f"Redis at {mask_url(url)} runs with maxmemory-policy {evicting[0]}: at maxmemory it evicts keys of any "
        "kind, and an index that lost some of its keys gives wrong stories without an error. Set "
        "CONFIG SET maxmemory-policy noeviction (then a full server refuses writes with a clear error), or "
        "pass --redis-allow-eviction (DEDUP_REDIS_ALLOW_EVICTION=true) if losing articles is acceptable")


# what Redis Cluster answers a script while one of its slots is moving to another master (resharding):
# the script stops at the first key that has already left (or, being new, would be created elsewhere)
SLOT_MOVING = "non local key"


def guarded(fn: Callable[..., T]) -> Callable[..., T]:
    """Turn a connection failure that outlived the retries into an error naming the server, and a
    script stopped by a slot on the move into one that says so (both mean: retry later, see
    docs/redis.md, "Resharding").

    Also redoes the call when a script refused this client's epoch: the namespace emptied (its meta
    key went with the last article) and was claimed again, so what the client cached is void.  Only
    the outermost guarded call of a thread redoes it, from the start: a step of a longer operation
    (an ingest reading records, a retention pass deleting) may have decided on what the old epoch
    held, so only the whole operation can be redone.

    On a Redis Cluster, a lost connection redoes the whole call too, after the same capped backoff a
    single server's commands get, re-reading the slot map before each attempt.  redis-py's cluster
    client retries a failed command at once, and the slot map names a killed master until a replica has
    taken over (failover takes the cluster's node timeout and an election); so without the wait an ingest
    failed within milliseconds.  The index's own wires (connection.DirectScripts) are chosen by the slot map, so they
    follow it.  Redoing is what the connection's own retry does on one server: a script that
    ran before its reply was lost finds its article stored (reported ``unchanged``)."""

    @functools.wraps(fn)
    def wrapper(self: "RedisIndex", *args: Any, **kwargs: Any) -> T:
        calls = self._guarded
        if getattr(calls, "depth", 0):
            return fn(self, *args, **kwargs)  # the outermost call translates errors and redoes
        calls.depth = 1
        try:
            attempt, lost = 1, 0
            while True:
                try:
                    return fn(self, *args, **kwargs)
                except (RedisConnectionError, RedisTimeoutError):
                    if not isinstance(self._r, RedisCluster) or lost >= self._retries:
                        raise
                    lost += 1
                    time.sleep(self._reconnect.compute(lost))
                    try:  # the slot map as the surviving nodes see it now (the index's own wires follow it)
                        self._r.nodes_manager.initialize()
                    except (redis.RedisError, RedisClusterException):
                        pass  # the next attempt fails the same way, and waits longer
                    continue
                except redis.ResponseError as exc:
                    if not str(exc).startswith(EPOCH_MOVED):
                        raise
                    if attempt == CLAIM_ATTEMPTS:
                        raise IndexUnavailable(
                            f"namespace {self.namespace!r} at {mask_url(self.url)} was emptied and claimed again "
                            f"{attempt} times during one call: {exc}; retry") from exc
                self._claim()
                attempt += 1
        except (RedisConnectionError, RedisTimeoutError) as exc:
            raise IndexUnavailable(
                f"lost the connection to Redis at {mask_url(self.url)} (namespace {self.namespace!r}): {exc}; "
                "check that redis-server is running and reachable"
            ) from exc
        except redis.ResponseError as exc:
            core = refused(self._r, self.url, self.namespace, exc)
            if core is not None:
                raise core from None  # (the chained reply would quote the refused call's arguments: records)
            if not (isinstance(exc, TryAgainError) or SLOT_MOVING in str(exc)):
                raise
            raise slot_moving(self, exc) from exc
        finally:
            calls.depth = 0

    return wrapper


def slot_moving(index: "RedisIndex", exc: BaseException) -> "IndexUnavailable":
    """The error for a script that met a slot on the move (see docs/redis.md, "Resharding")."""
    return IndexUnavailable(
        f"a slot of namespace {index.namespace!r} is moving between the masters of {mask_url(index.url)} "
        f"(resharding), and a script found some of its keys gone or was sent on to the new master: {exc}; "
        "retry once the move is done")
