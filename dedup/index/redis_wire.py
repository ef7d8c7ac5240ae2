"""Script calls straight on the wire: the Redis index's hot path without redis-py's command layer.

Streaming ingest makes one or two EVALSHA calls per article, and redis-py
spends about as long on each call as the server does running it: taking a
connection from the pool (a poll() to check it is idle), packing every
argument through the generic encoder, observability hooks, and parsing the
reply element by element.  :class:`DirectScripts` keeps one connection of
its own, writes the EVALSHA request with the constant part (script digest,
key, namespace, bands, rows) packed once, and parses the reply from one
buffer.  While a reply is on its way it polls the socket for up to
``redis_spin_us`` instead of sleeping in recv() at once (see
:func:`_poll_read`): a streamed article waits for two replies, and on a VM
each wake-up from sleep costs about as much as the script it waited for.

It is only a fast path: anything out of the ordinary (the connection
lock taken by another thread, a forked process, a script the server does
not know, a dropped connection or an unexpected reply type) answers "not
done", and the caller goes through redis-py as before, with its retries and
script loading.  Error replies other than NOSCRIPT raise what redis-py
would raise.
"""

from __future__ import annotations

import os
import select
import socket
import threading
import time
from typing import Any, Sequence

import redis

try:  # the error classes redis-py would raise for an error reply; without them, every call goes through redis-py
    from redis._parsers.base import BaseParser
except ImportError:  # pragma: no cover - a redis-py that moved it
    BaseParser = None  # type: ignore[assignment,misc]

_CRLF = b"\r\n"


class _Incomplete(Exception):
    """The buffer ends before the reply does: read more."""


class _Unexpected(Exception):
    """A reply type the fast path does not handle: let redis-py do the call."""


def _parse(buf: bytes, pos: int) -> tuple[Any, int]:
    """One RESP2/RESP3 reply starting at ``pos``: (value, position after it).

    Arrays of bulk strings and integers (what the scripts answer) are read in one loop here; other
    elements go through :func:`_parse_one`.
    """
    if pos >= len(buf):
        raise _Incomplete
    if buf[pos] != 42:  # not an array
        return _parse_one(buf, pos)
    end = buf.find(_CRLF, pos)
    if end < 0:
        raise _Incomplete
    n = int(buf[pos + 1:end])
    pos = end + 2
    if n < 0:
        return None, pos
    items: list[Any] = []
    append = items.append
    size = len(buf)
    for _ in range(n):
        if pos >= size:
            raise _Incomplete
        t = buf[pos]
        if t == 36:  # '$' bulk string
            end = buf.find(_CRLF, pos)
            if end < 0:
                raise _Incomplete
            length = int(buf[pos + 1:end])
            if length < 0:
                append(None)
                pos = end + 2
                continue
            start = end + 2
            stop = start + length
            if stop + 2 > size:
                raise _Incomplete
            append(buf[start:stop])
            pos = stop + 2
        elif t == 58:  # ':' integer
            end = buf.find(_CRLF, pos)
            if end < 0:
                raise _Incomplete
            append(int(buf[pos + 1:end]))
            pos = end + 2
        else:
            value, pos = _parse(buf, pos) if t == 42 else _parse_one(buf, pos)
            append(value)
    return items, pos


def _parse_one(buf: bytes, pos: int) -> tuple[Any, int]:
    """One reply that is not an array."""
    end = buf.find(_CRLF, pos)
    if end < 0:
        raise _Incomplete
    t = buf[pos]
    if t == 36:  # '$' bulk string
        n = int(buf[pos + 1:end])
        if n < 0:
            return None, end + 2
        start = end + 2
        stop = start + n
        if stop + 2 > len(buf):
            raise _Incomplete
        return buf[start:stop], stop + 2
    if t == 58:  # ':' integer
        return int(buf[pos + 1:end]), end + 2
    if t == 95:  # '_' RESP3 null
        return None, end + 2
    if t == 43:  # '+' status
        return buf[pos + 1:end].decode("utf-8", errors="replace"), end + 2
    if t == 45:  # '-' error
        return _Error(buf[pos + 1:end].decode("utf-8", errors="replace")), end + 2
    raise _Unexpected(chr(t))


def _cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        return os.cpu_count() or 1


def _poll_read(sock: Any, budget: float) -> bytes | None:
    """Read what has arrived on ``sock``, polling for up to ``budget`` seconds; None when nothing came.

    A reply a script sends back within a few hundred microseconds still
    costs ~40 us more when the process sleeps in recv() and the kernel has
    to wake it (measured on a 2-vCPU VM: 61 us round trip asleep, 20 us
    polling).  Only for a plain socket whose descriptor is non-blocking
    (redis-py sets one when it has a socket timeout); TLS sockets decrypt
    in Python and are left to recv().
    """
    if type(sock) is not socket.socket or sock.gettimeout() is None:
        return None
    fd = sock.fileno()
    clock = time.perf_counter
    deadline = clock() + budget
    while True:
        try:
            data = os.read(fd, 65536)
        except BlockingIOError:
            if clock() > deadline:
                return None
            continue
        return data or None  # b"": the server closed the connection, which recv() then reports


class PipelineBroken(Exception):
    """A pipelined call could not be read back; the caller redoes the step through redis-py."""


class ScriptsMissing(PipelineBroken):
    """The server answered NOSCRIPT (a new, restarted or flushed server): load the scripts, then redo."""


class _Error(str):
    """An error reply (kept apart from a status reply of the same text)."""


def _arg(value: Any) -> bytes:
    return b"".join(_args([value]))


def _args(values: Sequence[Any]) -> list[bytes]:
    """RESP bulk strings of the arguments (pieces to join): bytes as they are, str as UTF-8, int in decimal."""
    out: list[bytes] = []
    append = out.append
    for value in values:
        t = type(value)
        if t is bytes:
            b = value
        elif t is str:
            b = value.encode("utf-8")
        elif t is int:
            b = b"%d" % value
        elif isinstance(value, (bytes, str, int)) and not isinstance(value, bool):  # subclasses
            b = value if isinstance(value, bytes) else (value.encode("utf-8") if isinstance(value, str)
                                                         else b"%d" % value)
        else:
            raise _Unexpected(type(value).__name__)
        append(b"$%d\r\n" % len(b))
        append(b)
        append(_CRLF)
    return out


class DirectScripts:
    """EVALSHA of the index's scripts on a connection of its own; see the module docstring."""

    def __init__(self, client: redis.Redis, shas: dict[str, str], fixed: Sequence[Any], spin_us: int = 0) -> None:
        self._pool = client.connection_pool
        # polling a second CPU is free; with one, it would only keep the server from running
        self._spin = spin_us / 1e6 if _cpus() > 1 else 0.0
        # after the command name and digest: numkeys 1, the key, then the fixed arguments (none: every
        # call passes numkeys, its key and all its arguments itself)
        head = _arg(1) + _arg(fixed[0]) + b"".join(_arg(a) for a in fixed[1:]) if fixed else b""
        self._heads = {name: _arg("EVALSHA") + _arg(sha) + head for name, sha in shas.items()}
        self._n_fixed = 2 + (1 + len(fixed) if fixed else 0)  # EVALSHA, digest[, numkeys, key + fixed args]
        self._lock = threading.Lock()
        self._conn: Any = None
        self._pending = 0  # replies of send() not read yet
        self._buf = b""
        self._poller: Any = None  # see ready()
        self._polled: Any = None  # the socket registered with it
        self._pid = os.getpid()
        self._posted_by: int | None = None  # the thread whose posted call's reply is still to be read (see post)
        self.posted_noscript = False  # a posted call was answered NOSCRIPT: the caller loads the scripts
        # replies come back as bytes here; a client that decodes them gets every call through redis-py
        self._off = bool(getattr(client.get_encoder(), "decode_responses", False)) or BaseParser is None

    def _connection(self) -> Any:
        if self._pid != os.getpid():  # forked: the socket belongs to the parent
            self._conn, self._pid = None, os.getpid()
        if self._conn is None:
            conn = self._pool.make_connection()
            conn.connect()
            self._conn = conn
        return self._conn

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.disconnect()
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
        sent (the connection is busy or the fast path is off)."""
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
        except PipelineBroken:  # the connection is given up; the next call makes a new one
            pass

    def send(self, calls: Sequence[tuple[str, Sequence[Any]]]) -> bool:
        """Write several script calls in one go and keep the connection for :meth:`recv`, so the client
        can work while the server runs them.  False: not possible here (the caller goes through redis-py).
        Every call sent must be read with :meth:`recv` (or :meth:`abandon`), which frees the connection."""
        if self._posted_by is not None:
            self.settle()
        if self._off or not self._lock.acquire(blocking=False):
            return False
        try:
            request = self._request(calls)
        except _Unexpected:  # an argument type the fast path does not encode
            self._lock.release()
            return False
        try:
            sock = getattr(self._connection(), "_sock", None)  # redis-py keeps the socket there (5.x to 8.x)
            if sock is None:
                raise _Unexpected("no socket")
            sock.sendall(request)
        except (_Unexpected, OSError, ConnectionError, redis.RedisError, ValueError, AttributeError):
            self._drop()
            self._lock.release()
            return False
        self._pending, self._buf = len(calls), b""
        return True

    def push(self, calls: Sequence[tuple[str, Sequence[Any]]]) -> bool:
        """Write more calls behind the ones in flight (sent and not all read yet): the server runs them in
        order, so a bulk load keeps it busy while the client decides.  With nothing in flight it is
        :meth:`send` (False: not possible here, nothing written).  Raises :class:`PipelineBroken` when
        writing behind calls in flight fails (then every call in flight is given up)."""
        if not self._pending:
            return self.send(calls)
        try:
            self._conn._sock.sendall(self._request(calls))
        except (_Unexpected, OSError, ConnectionError, redis.RedisError, ValueError, AttributeError) as exc:
            self.abandon()
            raise PipelineBroken(str(exc)) from exc
        self._pending += len(calls)
        return True

    def _request(self, calls: Sequence[tuple[str, Sequence[Any]]]) -> bytes:
        return b"".join(b"".join([b"*%d\r\n" % (self._n_fixed + len(args)), self._heads[name], *_args(args)])
                        for name, args in calls)

    def recv(self) -> Any:
        """The next reply of what :meth:`send` wrote.  Raises :class:`PipelineBroken` when the connection
        failed, or :class:`ScriptsMissing` when a script was unknown (NOSCRIPT): the calls not read back
        may or may not have run.
        An error reply raises what redis-py would raise."""
        return self._next(raise_errors=True)

    def _next(self, raise_errors: bool) -> Any:
        """:meth:`recv`; without ``raise_errors``, an error reply (of a posted call) is dropped instead,
        and the calls behind it are still read."""
        try:
            sock = self._conn._sock
            buf = self._buf
            while True:
                try:
                    reply, end = _parse(buf, 0)
                    break
                except _Incomplete:
                    chunk = (self._spin and _poll_read(sock, self._spin)) or sock.recv(65536)
                    if not chunk:
                        raise ConnectionError("connection closed by the server")
                    buf = buf + chunk if buf else chunk
            self._buf = buf[end:]
            if self._pending == 1 and self._buf:  # more replies than calls: out of step
                raise _Unexpected("trailing data")
        except (_Unexpected, OSError, ConnectionError, redis.RedisError, ValueError, AttributeError) as exc:
            self.abandon()
            raise PipelineBroken(str(exc)) from exc
        self._pending -= 1
        if self._pending == 0:
            self._lock.release()
        if isinstance(reply, _Error) and not raise_errors:
            if reply.startswith("NOSCRIPT"):  # nobody else would load it: a restarted or flushed server
                self.posted_noscript = True
            return None
        if isinstance(reply, _Error):
            self.abandon()  # the other replies (if any) are not read: start over on a new connection
            if reply.startswith("NOSCRIPT"):
                raise ScriptsMissing(str(reply))
            raise BaseParser.parse_error(str(reply))
        if isinstance(reply, list):  # an error inside an array comes back as the exception, as in redis-py
            reply = [BaseParser.parse_error(str(v)) if isinstance(v, _Error) else v for v in reply]
        return reply

    def ready(self) -> bool:
        """Whether reading the next reply can start without waiting: part of it is buffered, or the
        socket has bytes (a TLS socket may also hold decrypted ones)."""
        if self._buf:
            return True
        sock = self._conn._sock
        pending = getattr(sock, "pending", None)
        if pending is not None and pending():
            return True
        if self._polled is not sock:  # poll(), not select(): a descriptor above 1023 is fine
            self._poller = select.poll()
            self._poller.register(sock, select.POLLIN)
            self._polled = sock
        return bool(self._poller.poll(0))

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
