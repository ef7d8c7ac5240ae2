"""Errors of the Redis index and the guard that turns Redis's failures into them.

Every public method of :class:`~dedup.index.redis.RedisIndex` runs under :func:`guarded`, so the CLI, the
worker and the dashboard see one of two errors whatever went wrong underneath: :class:`IndexUnavailable`
(the server, the connection or a slot: retry later) or :class:`IndexMismatch` (the namespace belongs to
other settings: fix the settings or the namespace).  Kept apart from the index so the rules for what is
retried, redone or reported live in one place.
"""

from __future__ import annotations

import functools
import time
from typing import TYPE_CHECKING, Any, Callable, TypeVar

import redis
from redis.cluster import RedisCluster
from redis.exceptions import AuthenticationError, RedisClusterException
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.exceptions import TryAgainError
from redis.retry import Retry

from ..records import DedupError, IndexMismatch, IndexUnavailable
from ..urls import mask_url

if TYPE_CHECKING:
    from .redis import RedisIndex

T = TypeVar("T")

EPOCH_MOVED = "DEDUP-EPOCH"  # a story-slot script refused the epoch this client sent (see RedisIndex._claim)
CLAIM_ATTEMPTS = 3  # calls redone after the namespace emptied and was claimed again meanwhile


def permanent_hint(exc: BaseException) -> str | None:
    """What to fix for a connection error no retry cures (wrong password, untrusted TLS certificate); None otherwise."""
    text = str(exc)
    if isinstance(exc, AuthenticationError) or "WRONGPASS" in text:
        return "put the server's password in the URL (redis://:PASSWORD@host:port/db)"
    if "CERTIFICATE_VERIFY_FAILED" in text:
        return "name the CA that signed the server's certificate: rediss://host:port/db?ssl_ca_certs=/path/to/ca.crt"
    return None


def retries_within(seconds: float, backoff: Any) -> int:
    """How many retries ``backoff`` (waits growing to a cap) fits in ``seconds``: at least one wait, so a
    budget of 0 still retries once (a connection dropped while idle is the common case), then as many as
    the budget holds, the last one allowed to end past it."""
    n, waited = 0, 0.0
    while waited < seconds or n == 0:
        n += 1
        waited += backoff.compute(n)
        if n >= 1000:
            break
    return n


class RetryTransient(Retry):
    """redis-py's retry with backoff, except for errors no retry cures (they are raised at once)."""

    def call_with_retry(self, do: Callable[[], T], fail: Callable[[Exception], Any], *args: Any, **kwargs: Any) -> T:
        def fail_fast(exc: Exception, *count: Any) -> Any:
            if permanent_hint(exc) is not None:
                raise exc
            return fail(exc, *count)

        return super().call_with_retry(do, fail_fast, *args, **kwargs)


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
    failed within milliseconds.  The index's own wires (redis_wire) are chosen by the slot map, so they
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
