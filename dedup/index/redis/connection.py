"""Connecting to Redis: the index's redis-py client, and script calls on a connection of its own.

:func:`connect` makes the client for a URL (a single server, TLS, a Unix socket or a Redis Cluster) with
a capped exponential backoff that rides out a restart or a failover, but not a refused password or an
untrusted certificate, which no retry cures (:func:`permanent_hint`).

**Calls written ahead of their replies.**  A bulk load writes the next
chunk's read behind the write in flight and decides while the server runs
both, and a streamed article's upkeep (MAINTAIN) is answered while the
client prepares the next article: calls written now and read later, which redis-py's client and pipeline objects
(a command, or a batch, then all its replies) do not offer.
:class:`DirectScripts` holds one redis-py connection made from the client's
pool settings (so TLS, auth, database and timeouts follow the URL), writes
EVALSHA requests with ``send_packed_command`` and reads each reply with
``read_response`` (parsed by hiredis when installed).

**Waiting for a reply.**  A reply is polled for up to ``redis_spin_us``
before the read blocks under the socket timeout: waking a blocked process
costs tens of microseconds per round trip on a VM, which streaming pays
twice per article.  Measured side by side on a 2-core VM (``bench/redis_index.py``
streaming, docs/benchmarks.md): 1,300-1,440 articles/s polling against
1,020-1,240 blocking, about a quarter more, for some 250 us more client CPU
per article.  Never on one CPU (the server would wait for the poller) nor
over TLS (a poll cannot see inside an encrypted record).

It is only a fast path: anything out of the ordinary (the connection taken
by another thread, a forked process, a script the server does not know, a
dropped connection) answers "not done", and the caller goes through the
redis-py client, with its retries and script loading.  Error replies other
than NOSCRIPT raise what redis-py raises.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any, Callable, Sequence, TypeVar

import redis
from redis.backoff import ExponentialBackoff
from redis.cluster import RedisCluster
from redis.exceptions import AuthenticationError, NoScriptError, RedisClusterException
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry

from ...records import AccessDenied, DedupError, IndexUnavailable
from ...urls import mask_url

CLUSTER_SCHEME = "redis+cluster://"

T = TypeVar("T")


def connect(url: str, retry_s: float, retries: int | None, socket_timeout: float
            ) -> tuple[Any, ExponentialBackoff, int]:
    """The redis-py client for ``url``, the backoff its retries wait by, and how many retries it gets
    (``retries``, or as many as fit in ``retry_s`` seconds).  A Redis Cluster's client gets the same
    backoff, which the index's guard applies to whole calls (see errors.guarded)."""
    backoff = ExponentialBackoff(cap=2.0, base=0.05)
    if retries is None:
        retries = retries_within(retry_s, backoff)
    retry = RetryTransient(backoff, retries)
    try:
        if url.startswith(CLUSTER_SCHEME):
            # every key carries the {namespace} hash tag, so one index lives in one slot
            client: Any = RedisCluster.from_url(
                "redis://" + url[len(CLUSTER_SCHEME):], retry=retry,
                socket_timeout=socket_timeout, socket_connect_timeout=5.0,
            )
        else:
            client = redis.Redis.from_url(
                url,
                retry=retry,
                retry_on_error=[RedisConnectionError, RedisTimeoutError],
                socket_timeout=socket_timeout,
                socket_connect_timeout=5.0,
                health_check_interval=30,
            )
    except (ValueError, RedisClusterException) as exc:
        raise IndexUnavailable(f"bad or unreachable Redis URL {mask_url(url)}: {exc}") from exc
    except (RedisConnectionError, RedisTimeoutError) as exc:
        raise IndexUnavailable(
            f"cannot connect to Redis at {mask_url(url)}: {exc}; start redis-server or fix --redis"
        ) from exc
    return client, backoff, retries


def cannot_connect(url: str, exc: BaseException) -> DedupError:
    """The error for a server that could not be reached or refused the client's credentials."""
    hint = permanent_hint(exc) or "start redis-server or fix --redis (rediss:// if the server speaks TLS)"
    error = AccessDenied if isinstance(exc, AuthenticationError) else IndexUnavailable
    return error(f"cannot connect to Redis at {mask_url(url)}: {exc}; {hint}")


def permanent_hint(exc: BaseException) -> str | None:
    """What to fix for a connection error no retry cures (wrong password, untrusted TLS certificate); None otherwise."""
    text = str(exc)
    if isinstance(exc, AuthenticationError) or "WRONGPASS" in text:
        return ("put the server's password in the URL (redis://:PASSWORD@host:port/db; "
                "redis://USER:PASSWORD@host:port/db for an ACL user)")
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


# what a failed write or read raises: redis-py's connection and timeout errors (it drops the connection
# first), and OSError from a socket closed under it
_LOST = (redis.ConnectionError, redis.TimeoutError, OSError)


class PipelineBroken(Exception):
    """A pipelined call could not be read back; the caller redoes the step through redis-py."""


class ScriptsMissing(PipelineBroken):
    """The server answered NOSCRIPT (a new, restarted or flushed server): load the scripts, then redo."""


def _cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        return os.cpu_count() or 1


class DirectScripts:
    """EVALSHA of the index's scripts on a connection of its own; see the module docstring."""

    def __init__(self, client: redis.Redis, shas: dict[str, str], fixed: Sequence[Any], spin_us: int = 0) -> None:
        self._pool = client.connection_pool
        tls = issubclass(self._pool.connection_class, redis.SSLConnection)
        self._spin = spin_us / 1e6 if spin_us and _cpus() > 1 and not tls else 0.0
        # after the command name and digest: numkeys 1, the key, then the fixed arguments (none: every
        # call passes numkeys, its key and all its arguments itself)
        head = (1, *fixed) if fixed else ()
        self._heads = {name: (b"EVALSHA", sha, *head) for name, sha in shas.items()}
        self._lock = threading.Lock()
        self._conn: Any = None
        self._pending = 0  # calls written and not read yet
        self._pid = os.getpid()
        self._posted_by: int | None = None  # the thread whose posted call's reply is still to be read (see post)
        self.posted_noscript = False  # a posted call was answered NOSCRIPT: the caller loads the scripts

    def _connection(self) -> Any:
        if self._pid != os.getpid():  # forked: the socket belongs to the parent
            self._conn, self._pid = None, os.getpid()
        if self._conn is None:
            # made, not borrowed: the pool hands its own connections to the client's calls meanwhile
            self._conn = self._pool.make_connection()
        return self._conn

    def _drop(self) -> None:
        """Close the socket (the replies on it are given up); the next write connects again."""
        if self._conn is not None:
            try:
                self._conn.disconnect()
            except Exception:
                pass

    def call(self, name: str, args: Sequence[Any]) -> tuple[bool, Any]:
        """(True, reply) when the call was made here; (False, None): make it through redis-py."""
        if self._posted_by is not None and self._posted_by == threading.get_ident():
            # written behind this thread's posted call, whose answer (long arrived) is read and dropped
            # while this one's is on its way: no read of its own, as settle() would make
            self._posted_by = None
            if self._pending:
                try:
                    self.push([(name, args)])
                    self._next(raise_errors=False)
                    return True, self.recv()
                except PipelineBroken:
                    return False, None
        if not self.send([(name, args)]):
            return False, None
        try:
            return True, self.recv()
        except PipelineBroken:
            # NOSCRIPT (redis-py loads the script and runs it) or a failed connection: the script may or may
            # not have run, and redis-py runs it again, as its own retry would
            return False, None

    # -- pipelined calls: write now, read later ------------------------------------------------------
    def post(self, name: str, args: Sequence[Any]) -> bool:
        """Send a call whose answer nobody waits for (upkeep the server does while the client works on):
        its reply is read and dropped before this thread's next call, or by :meth:`settle`.  False: not
        sent (the connection is busy)."""
        if not self.send([(name, args)]):
            return False
        self._posted_by = threading.get_ident()
        return True

    def settle(self) -> None:
        """Read the reply of this thread's posted call, if any, and drop it.  Its outcome does not
        matter to anyone: an error reply or a lost connection only leaves the upkeep undone."""
        if self._posted_by is None or self._posted_by != threading.get_ident():
            return
        self._posted_by = None
        try:
            self._next(raise_errors=False)
        except PipelineBroken:  # the connection is given up; the next call connects again
            pass

    def send(self, calls: Sequence[tuple[str, Sequence[Any]]]) -> bool:
        """Write several script calls in one go and keep the connection for :meth:`recv`, so the client
        can work while the server runs them.  False: not possible here (the caller goes through redis-py).
        Every call sent must be read with :meth:`recv` (or :meth:`abandon`), which frees the connection."""
        if self._posted_by is not None:
            self.settle()
        if not self._lock.acquire(blocking=False):
            return False
        try:
            conn = self._connection()
            conn.send_packed_command(self._pack(conn, calls))
        except (redis.RedisError, OSError):  # not connected, or an argument redis-py cannot encode
            self._drop()
            self._lock.release()
            return False
        self._pending = len(calls)
        return True

    def push(self, calls: Sequence[tuple[str, Sequence[Any]]]) -> bool:
        """Write more calls behind the ones in flight (sent and not all read yet): the server runs them in
        order, so a bulk load keeps it busy while the client decides.  With nothing in flight it is
        :meth:`send` (False: not possible here, nothing written).  Raises :class:`PipelineBroken` when
        writing behind calls in flight fails (then every call in flight is given up)."""
        if not self._pending:
            return self.send(calls)
        try:
            # no health check: its PING would be answered behind the replies in flight
            self._conn.send_packed_command(self._pack(self._conn, calls), check_health=False)
        except (redis.RedisError, OSError) as exc:
            self.abandon()
            raise PipelineBroken(str(exc)) from exc
        self._pending += len(calls)
        return True

    def _pack(self, conn: Any, calls: Sequence[tuple[str, Sequence[Any]]]) -> list[bytes]:
        heads = self._heads
        if len(calls) == 1:
            name, args = calls[0]
            return conn.pack_command(*heads[name], *args)
        return conn.pack_commands([(*heads[name], *args) for name, args in calls])

    def recv(self) -> Any:
        """The next reply of what :meth:`send` wrote.  Raises :class:`PipelineBroken` when the connection
        failed, or :class:`ScriptsMissing` when a script was unknown (NOSCRIPT): the calls not read back
        may or may not have run.
        An error reply raises what redis-py would raise."""
        return self._next(raise_errors=True)

    def _next(self, raise_errors: bool) -> Any:
        """:meth:`recv`; without ``raise_errors``, an error reply (of a posted call) is dropped instead,
        and the calls behind it are still read."""
        error: redis.ResponseError | None = None
        try:
            if self._spin:
                deadline = time.perf_counter() + self._spin
                while not self._conn.can_read(timeout=0) and time.perf_counter() < deadline:
                    pass
            reply = self._conn.read_response()
        except redis.ResponseError as exc:  # an error reply: the connection stays in step
            reply, error = None, exc
        except _LOST as exc:
            self.abandon()
            raise PipelineBroken(str(exc)) from exc
        self._pending -= 1
        if self._pending == 0:
            self._lock.release()
        if error is None:
            return reply
        if not raise_errors:
            if isinstance(error, NoScriptError):  # nobody else would load it: a restarted or flushed server
                self.posted_noscript = True
            return None
        self.abandon()  # the other replies (if any) are not read: start over on a new connection
        if isinstance(error, NoScriptError):
            raise ScriptsMissing(f"NOSCRIPT {error}") from error
        raise error

    def ready(self) -> bool:
        """Whether reading the next reply can start without waiting: a reply is in flight and part of it
        has arrived (or the connection closed, which :meth:`recv` then reports)."""
        if not self._pending:
            return False
        try:
            return bool(self._conn.can_read(timeout=0))
        except _LOST:
            return True

    def abandon(self) -> None:
        """Give up on the replies not read yet: drop the connection and free it."""
        self._posted_by = None
        if self._pending:
            self._pending = 0
            self._drop()
            self._lock.release()

    def close(self) -> None:
        self.settle()
        self.abandon()
        with self._lock:
            self._drop()
