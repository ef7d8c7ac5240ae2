"""The stream worker: read articles from a Redis stream, cluster them, publish assignments.

Shape (after rq's worker): bootstrap -> signal handlers -> loop with an
ordered except ladder -> teardown.  Guarantees:

* at-least-once: a message is XACKed only after its index write and its
  output (or dead letter) are stored (a MULTI does not roll back, so the
  ack is sent only after the publishing MULTI succeeded);
  redelivery is harmless because the Deduper is idempotent by article id
  (same content -> ``unchanged``, new version -> ``replaced``);
* bad messages never block the stream: they are dead-lettered with a reason;
* transient failures are retried with backoff and counted in a hash, so a
  message that keeps failing is dead-lettered after ``max_attempts``; a lost
  connection costs no attempt (it is not the message's fault);
* a dead consumer's pending messages are taken over with XAUTOCLAIM.

The worker knows only the :class:`~dedup.service.Deduper` API, so it runs
the same over the in-process index (one worker) and the shared Redis index
(any number of workers).
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import redis

from .records import BadInput, IndexFull, IndexUnavailable
from .service import Deduper
from .settings import DeclaredSettings
from .streams import (
    CONNECTION_ERRORS,
    Rejected,
    assignment_fields,
    cluster_slot_problem,
    code_of,
    connect,
    dead_fields,
    ensure_group,
    message_ms,
    parse_message,
)

log = logging.getLogger("dedup.worker")


Message = tuple[bytes, dict[bytes, bytes] | None]

# Redis is away: the streams' server, or the index's (which may be another
# server; its client has already spent its own retries and says so with
# IndexUnavailable).  Neither is the message's fault, so neither costs an
# attempt: the worker waits for both and re-reads what it had not acknowledged.
REDIS_AWAY: tuple[type[BaseException], ...] = (*CONNECTION_ERRORS, IndexUnavailable)
# Redis is at its maxmemory (policy noeviction) and refuses writes: the index's (IndexFull), or the
# streams' when publishing.  Not the message's fault either: the batch stays unacknowledged and is
# redone, without spending attempts, once memory is freed (what the index stored comes back unchanged).
REDIS_FULL: tuple[type[BaseException], ...] = (IndexFull, redis.exceptions.OutOfMemoryError)
NOT_THE_MESSAGE = REDIS_AWAY + REDIS_FULL


def _ws(default: Any, help: str) -> Any:
    return field(default=default, metadata={"help": help})


@dataclass(frozen=True)
class WorkerSettings(DeclaredSettings):
    """Every worker tunable, declared once: the CLI flags, ``DEDUP_*`` variables and docs come from here."""

    streams_url: str = _ws("", "Redis holding the streams; defaults to the --redis index URL.")
    input_stream: str = _ws("dedup:in", "Stream of incoming articles (field 'article' = JSON).")
    output_stream: str = _ws("dedup:out", "Stream the assignments are published on.")
    dead_stream: str = _ws("dedup:dead", "Stream of messages that could not be clustered.")
    group: str = _ws("dedup", "Consumer group shared by all workers of one pipeline.")
    consumer: str = _ws("", "This worker's consumer name; defaults to host-pid.")
    batch_size: int = _ws(20, "Messages read (and acknowledged) per round trip; also bounds shutdown time.")
    block_ms: int = _ws(1000, "How long one read waits for new messages; an idle worker notices SIGTERM within this.")
    claim_idle_ms: int = _ws(60000, "Take over another consumer's pending message after it sat idle this long.")
    max_attempts: int = _ws(3, "Failed attempts after which a message is dead-lettered.")
    max_deliveries: int = _ws(
        10, "Deliveries without an outcome (workers crashing on it) after which a message is dead-lettered as poison.")
    backoff_max_s: float = _ws(10.0, "Cap of the exponential backoff between reconnects and retries.")
    metrics_port: int = _ws(0, "Serve Prometheus metrics on this port (0 = off).")
    with_rank: bool = _ws(False, "Add each article's rank in its story to the output (costs a story ranking).")
    out_maxlen: int = _ws(0, "Trim the output stream to about this many entries (0 = never).")
    log_level: str = _ws("INFO", "Log level (DEBUG, INFO, WARNING, ERROR).")

    def __post_init__(self) -> None:
        for name in ("batch_size", "max_attempts", "max_deliveries"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        for name in ("block_ms", "claim_idle_ms", "metrics_port", "out_maxlen"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be 0 or more")

    def consumer_name(self) -> str:
        return self.consumer or f"{socket.gethostname()}-{os.getpid()}"

    def attempts_key(self) -> str:
        return self.input_stream + ":attempts"

    def stream_keys(self) -> list[str]:
        """Every key the worker writes in its MULTIs (on a Redis Cluster they must share a slot)."""
        return [self.input_stream, self.output_stream, self.dead_stream, self.attempts_key()]


def worker_options(fn: Callable) -> Callable:
    """One click option per WorkerSettings field, read from ``DEDUP_<NAME>`` too."""
    import click  # the worker library itself does not need click

    for f in reversed(WorkerSettings.declared()):
        flag = "--" + f.name.replace("_", "-")
        extra: dict[str, Any] = {"is_flag": True} if isinstance(f.default, bool) else {"type": type(f.default)}
        fn = click.option(
            flag, f.name, default=None, envvar=WorkerSettings.env_name(f.name), show_envvar=True,
            help=f.metadata["help"] + (f" [default: {f.default}]" if f.default != "" else ""), **extra,
        )(fn)
    return fn


# -- metrics ------------------------------------------------------------------
class _Noop:
    """Stands in for a metric when prometheus_client is not installed."""

    def labels(self, *a: Any, **k: Any) -> "_Noop":
        return self

    def inc(self, *a: Any) -> None: ...

    def set(self, *a: Any) -> None: ...

    def observe(self, *a: Any) -> None: ...


class Metrics:
    """The worker's Prometheus metrics, in a registry of its own.

    A private registry lets several workers live in one process (tests)
    without clashing over global metric names.
    """

    def __init__(self) -> None:
        self.server: Any = None
        try:
            import prometheus_client as prom
        except ImportError:
            self.registry = None
            self.processed = self.dead = self.retries = self.lag = self.pending = self.latency = _Noop()
            return
        self.registry = prom.CollectorRegistry()
        r = self.registry
        self.processed = prom.Counter("dedup_worker_processed", "Articles clustered, by action.", ["action"], registry=r)
        self.dead = prom.Counter("dedup_worker_dead_lettered", "Messages dead-lettered, by reason.", ["reason"], registry=r)
        self.retries = prom.Counter("dedup_worker_retries", "Failed attempts that will be retried.", registry=r)
        self.lag = prom.Gauge("dedup_worker_lag", "Entries in the input stream not yet read by the group.", registry=r)
        self.pending = prom.Gauge("dedup_worker_pending", "Entries read by the group but not yet acknowledged.", registry=r)
        self.latency = prom.Histogram(
            "dedup_worker_ingest_latency_seconds", "Time from XADD of an article to its assignment being published.",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300), registry=r)

    def serve(self, port: int) -> None:
        if not port:
            return
        if self.registry is None:
            raise RuntimeError("--metrics-port needs prometheus_client: pip install 'dedup[worker]'")
        import prometheus_client as prom

        started = prom.start_http_server(port, registry=self.registry)
        self.server = started[0] if isinstance(started, tuple) else None

    def close(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None


# -- the worker -----------------------------------------------------------------
class StopNow(Exception):
    """Leave the loop from deep inside a wait (a stop was requested while Redis was away)."""


class Backoff:
    """Capped exponential backoff: 0.1 s, 0.2 s, 0.4 s ... up to ``cap``."""

    def __init__(self, cap: float, base: float = 0.1) -> None:
        self.cap, self.base, self.n = cap, base, 0

    def next(self) -> float:
        delay = min(self.cap, self.base * (2 ** self.n))
        self.n += 1
        return delay

    def reset(self) -> None:
        self.n = 0


class Worker:
    """One consumer of the input stream.

    ``deduper`` is injected: the in-process index for a single worker, the
    Redis index (``Deduper(url=...)``) for several sharing one index.
    """

    def __init__(self, deduper: Deduper, client: redis.Redis, settings: WorkerSettings | None = None,
                 *, burst: bool = False, install_signals: bool = True) -> None:
        self.dd = deduper
        self.client = client
        self.ws = settings or WorkerSettings()
        self.burst = burst
        self.install_signals = install_signals
        self.consumer = self.ws.consumer_name()
        self.attempts_key = self.ws.attempts_key()
        self.metrics = Metrics()
        self.backoff = Backoff(self.ws.backoff_max_s)
        self.state = "starting"  # starting | idle | busy | stopping
        self.stop_requested = False
        self.signals = 0
        self.counts = {"processed": 0, "dead": 0, "retried": 0}
        self._old_handlers: dict[int, Any] = {}
        self._pel_cursor: bytes | None = b"0"  # read our own pending entries first (a restart's leftovers)
        self._deliveries: dict[bytes, int] = {}  # delivery counts of redelivered messages in the batch
        self._failed_in_pass = False
        self._retry_at: float | None = None
        self._next_claim = 0.0
        self._next_stats = 0.0

    # -- lifecycle ------------------------------------------------------------
    def run(self) -> int:
        """Bootstrap, loop until stopped (or drained in burst mode), tear down; returns the exit code.

        An unexpected error ends the worker with status 1 rather than being
        swallowed: whatever it had read stays pending, and a restarted worker
        (or XAUTOCLAIM) picks it up.
        """
        try:
            self.bootstrap()
            self.loop()
        except StopNow:
            pass
        except Exception:
            log.exception("worker %s failed; unacknowledged messages stay pending for redelivery", self.consumer)
            return 1
        finally:
            self.teardown()
        return 0

    def bootstrap(self) -> None:
        self._until_connected(first=True)
        self.metrics.serve(self.ws.metrics_port)
        if self.install_signals:
            for sig in (signal.SIGTERM, signal.SIGINT):
                self._old_handlers[sig] = signal.signal(sig, self._on_signal)
        log.info("worker %s reading %s (group %s)%s", self.consumer, self.ws.input_stream, self.ws.group,
                 " in burst mode" if self.burst else "")

    def teardown(self) -> None:
        self.state = "stopping"
        if not self.signals:  # after a signal ours stay: a second one during teardown still exits at once
            for sig, old in self._old_handlers.items():
                signal.signal(sig, old)
            self._old_handlers.clear()
        self.metrics.close()
        log.info("worker %s stopped: %d processed, %d dead-lettered, %d retried", self.consumer,
                 self.counts["processed"], self.counts["dead"], self.counts["retried"])

    def request_stop(self) -> None:
        """Finish the batch in hand, then leave the loop (what the first SIGTERM does)."""
        self.stop_requested = True

    def _on_signal(self, signum: int, frame: Any) -> None:
        self.signals += 1
        name = signal.Signals(signum).name
        if self.signals > 1:
            log.warning("second %s: exiting at once; unacknowledged messages stay pending for redelivery", name)
            sys.stderr.flush()
            os._exit(128 + signum)
        log.info("%s: finishing current work, then exiting (send again to exit at once)", name)
        # Only a flag: raising here could interrupt a read that already took
        # messages off the stream.  An idle worker notices within --block-ms.
        self.stop_requested = True

    # -- loop -----------------------------------------------------------------
    def loop(self) -> None:
        """The except ladder, most specific first: stop, connection loss, lost group.

        Anything else propagates to :meth:`run`, which logs it and exits 1.
        """
        while not self.stop_requested:
            try:
                self.state = "idle"
                messages = self._next_messages()
                if messages is None:  # burst mode and nothing left
                    break
                if messages:
                    self.state = "busy"
                    self.handle_batch(messages)
                self._stats()
            except StopNow:
                break
            except REDIS_AWAY as exc:
                log.warning("Redis connection lost (%s); reconnecting", exc)
                self._until_connected()
                self._pel_cursor = b"0"  # redo what was read but not acknowledged
            except REDIS_FULL as exc:
                delay = self.backoff.next()
                reason = str(exc) if isinstance(exc, IndexFull) else (
                    "the streams' Redis is out of memory (maxmemory reached): raise its maxmemory or free memory")
                log.warning("%s; the batch stays unacknowledged, retrying in %.1fs", reason, delay)
                self._sleep(delay)
                self._pel_cursor = b"0"
            except redis.exceptions.ResponseError as exc:
                if "NOGROUP" not in str(exc):
                    raise
                log.warning("consumer group %s is gone (Redis lost its data?); recreating it", self.ws.group)
                ensure_group(self.client, self.ws.input_stream, self.ws.group)
                self._pel_cursor = b"0"
        self.state = "stopping"

    def _next_messages(self) -> list[Message] | None:
        """Own pending entries first, then due retries, reclaimed ones, then new ones; None = burst done."""
        now = time.monotonic()
        if self._pel_cursor is None and self._retry_at is not None and now >= self._retry_at:
            self._retry_at, self._pel_cursor = None, b"0"
        if self._pel_cursor is not None:
            entries = self._read(self._pel_cursor, block=False)
            if entries:
                self._pel_cursor = entries[-1][0]
                self._count_deliveries(entries)
                return entries
            self._pel_cursor = None
            if self._failed_in_pass:  # come back to the failures later; let new messages flow meanwhile
                self._failed_in_pass = False
                self._retry_at = time.monotonic() + self.backoff.next()
            return []
        if self.burst or now >= self._next_claim:
            claimed = self._claim()
            if claimed:
                return claimed
        entries = self._read(b">", block=not self.burst)
        if entries or not self.burst:
            return entries
        if self._retry_at is not None:  # burst: wait for the retries before declaring the stream drained
            self._sleep(max(0.0, self._retry_at - time.monotonic()))
            return []
        return None

    def _read(self, start: bytes, block: bool) -> list[Message]:
        resp = self.client.xreadgroup(
            self.ws.group, self.consumer, {self.ws.input_stream: start}, count=self.ws.batch_size,
            block=(self.ws.block_ms or None) if block else None,
        )
        if not resp:
            return []
        _, entries = resp[0]
        return list(entries)

    def _claim(self) -> list[Message]:
        """XAUTOCLAIM messages another consumer read but left idle (it died, or is stuck)."""
        self._next_claim = time.monotonic() + max(self.ws.claim_idle_ms / 2000.0, 0.05)
        resp = self.client.xautoclaim(self.ws.input_stream, self.ws.group, self.consumer,
                                      min_idle_time=self.ws.claim_idle_ms, start_id="0-0", count=self.ws.batch_size)
        claimed = [m for m in resp[1] if m and m[0]]
        deleted = resp[2] if len(resp) > 2 else []
        if deleted:  # pending ids whose entries were trimmed away: nothing left to process
            self.client.xack(self.ws.input_stream, self.ws.group, *deleted)
        if claimed:
            log.info("claimed %d idle message(s) from dead or stuck consumers", len(claimed))
            self._count_deliveries(claimed)
        return claimed

    def _count_deliveries(self, entries: list[Message]) -> None:
        """Delivery counts (XPENDING) of redelivered messages, to catch ones that crash every worker.

        A failure the worker survives is counted in the attempts hash; a
        message that kills the process never is, so without this check it
        would be redelivered, and kill a worker, forever.
        """
        ids = [mid for mid, _ in entries]
        rows = self.client.xpending_range(self.ws.input_stream, self.ws.group, min=ids[0], max=ids[-1],
                                          count=len(ids) + 1000, consumername=self.consumer)
        wanted = set(ids)
        self._deliveries = {r["message_id"]: int(r["times_delivered"]) for r in rows if r["message_id"] in wanted}

    def _stats(self) -> None:
        """Refresh the lag and pending gauges every couple of seconds (XINFO GROUPS is cheap but not free)."""
        now = time.monotonic()
        if now < self._next_stats or self.metrics.registry is None:
            return
        self._next_stats = now + 2.0
        for g in self.client.xinfo_groups(self.ws.input_stream):
            if g.get("name") in (self.ws.group, self.ws.group.encode()):
                self.metrics.pending.set(g.get("pending") or 0)
                if g.get("lag") is not None:
                    self.metrics.lag.set(g["lag"])

    # -- one batch ------------------------------------------------------------
    def handle_batch(self, messages: list[Message]) -> None:
        """Cluster each message, publish outputs and dead letters in one MULTI, then acknowledge.

        The ack is a second step on purpose: Redis runs the rest of a MULTI
        even when one command fails (say WRONGTYPE on the output key), so an
        ack inside it could acknowledge an article whose output was never
        written.  Index writes come first; a crash before the ack only causes
        redelivery, which the idempotent Deduper turns into ``unchanged``.
        """
        pipe = self.client.pipeline(transaction=True)
        done: list[bytes] = []
        latencies: list[float] = []
        todo: list[tuple[bytes, dict[bytes, bytes]]] = []
        for mid, payload in messages:
            if not payload:  # entry deleted (trimmed) from the stream while it was pending
                done.append(mid)
                continue
            deliveries = self._deliveries.get(mid, 1)
            if deliveries > self.ws.max_deliveries:
                self._dead(pipe, mid, payload, "poison",
                           f"delivered {deliveries} times without finishing: it may crash workers", deliveries)
                done.append(mid)
                continue
            todo.append((mid, payload))
        results = self._cluster(todo)
        for mid, payload in todo:
            outcome = self._handle_one(mid, payload, results[mid], pipe)
            if outcome != "retry":
                done.append(mid)
            if outcome == "published":
                latencies.append(time.time() - message_ms(mid) / 1000.0)
        if len(pipe):
            pipe.execute()  # raises if any output failed: then nothing is acknowledged
        if done:
            ack = self.client.pipeline(transaction=True)
            ack.xack(self.ws.input_stream, self.ws.group, *done)
            ack.hdel(self.attempts_key, *done)
            ack.execute()
        self._deliveries = {}
        for sec in latencies:
            self.metrics.latency.observe(max(sec, 0.0))
        if done and not self._failed_in_pass:
            self.backoff.reset()

    def _cluster(self, todo: list[tuple[bytes, dict[bytes, bytes]]]) -> dict[bytes, "tuple[Any, ...]"]:
        """Parse and cluster a batch: message id -> (article or None, assignment or the exception it raised,
        and with an assignment its event and the events it joined into it).

        The articles go to the index together (``Deduper.add_many``: on Redis
        each one is still read, decided and written in arrival order, with the
        next one read while the one before is written), so stories are the
        ones a message-at-a-time worker would make.  An unexpected failure of
        the batch call is not pinned on any message: the batch is clustered
        again one message at a time, so only the failing one is retried (the
        others, already written, come back ``unchanged``, as on redelivery).
        """
        results: dict[bytes, tuple[Any, ...]] = {}
        articles = []
        for mid, fields in todo:
            try:
                article = parse_message(fields, f"{self.ws.input_stream}/{mid.decode()}", self.dd.settings.max_chars)
            except (Rejected, BadInput) as exc:
                results[mid] = (None, exc)
                continue
            articles.append((mid, article))
        try:
            outcomes = list(self.dd.add_many([a for _, a in articles], report_events=True))
        except NOT_THE_MESSAGE:
            raise  # not the batch's fault: the loop waits and redelivers
        except Exception as exc:  # noqa: BLE001 - find the message at fault one at a time
            log.warning("batch of %d failed as a whole (%s: %s); clustering its messages one by one",
                        len(articles), type(exc).__name__, exc)
            for mid, article in articles:
                try:
                    assignment = self.dd.add(article)
                    # alone, the links this article joined are not reported: its event is
                    event = self.dd.event_of(assignment.story)[0] if self.dd.settings.events else ""
                    results[mid] = (article, assignment, event, [])
                except NOT_THE_MESSAGE:
                    raise
                except Exception as one:  # noqa: BLE001 - this message's failure: retried, then dead-lettered
                    results[mid] = (article, one)
            return results
        for (mid, article), outcome in zip(articles, outcomes):
            results[mid] = (article, outcome.error if outcome.error is not None else outcome.assignment, outcome.event,
                            outcome.event_merged)
        return results

    def _handle_one(self, mid: bytes, fields: dict[bytes, bytes], result: "tuple[Any, ...]", pipe: Any) -> str:
        """Queue this message's output or dead letter on ``pipe``: ``published``, ``dead`` or ``retry`` (leave pending)."""
        article, assignment, *event = result
        try:
            if isinstance(assignment, BaseException):
                raise assignment
        except Rejected as exc:
            self._dead(pipe, mid, fields, exc.code, exc.detail, attempts=1)
            return "dead"
        except BadInput as exc:
            self._dead(pipe, mid, fields, code_of(exc), str(exc), attempts=1)
            return "dead"
        except NOT_THE_MESSAGE:
            raise  # not this message's fault: the loop waits and redelivers
        except Exception as exc:  # noqa: BLE001 - any other failure is retried, then dead-lettered
            attempts = int(self.client.hincrby(self.attempts_key, mid, 1))
            detail = f"{type(exc).__name__}: {exc}"
            if attempts >= self.ws.max_attempts:
                log.error("message %s failed %d times (%s); dead-lettering it", mid.decode(), attempts, detail)
                self._dead(pipe, mid, fields, "failed", detail, attempts=attempts)
                return "dead"
            log.warning("message %s failed (attempt %d of %d): %s; will retry", mid.decode(), attempts,
                        self.ws.max_attempts, detail)
            self.metrics.retries.inc()
            self.counts["retried"] += 1
            self._failed_in_pass = True
            if self._pel_cursor is None and self._retry_at is None:
                self._retry_at = time.monotonic() + self.backoff.next()
            return "retry"
        for w in article.warnings:
            log.warning("article %s: %s", article.id, w)
        rank = size = None
        if self.ws.with_rank:
            story = self.dd.story(assignment.story)
            if story is not None:
                size = story.size
                rank = next((v.rank for v in story.articles if v.id == assignment.article_id), None)
        out = assignment_fields(assignment, mid, rank, size)
        out[b"event"] = event[0].encode()
        out[b"event_merged"] = ",".join(event[1]).encode()
        if self.ws.out_maxlen:
            pipe.xadd(self.ws.output_stream, out, maxlen=self.ws.out_maxlen, approximate=True)
        else:
            pipe.xadd(self.ws.output_stream, out)
        log.info("article %s -> story %s (%s%s)", assignment.article_id, assignment.story, assignment.action,
                 f", merged {','.join(assignment.merged)}" if assignment.merged else "")
        self.metrics.processed.labels(assignment.action).inc()
        self.counts["processed"] += 1
        return "published"

    def _dead(self, pipe: Any, mid: bytes, fields: dict[bytes, bytes], code: str, detail: str, attempts: int) -> None:
        log.warning("message %s dead-lettered: %s (%s)", mid.decode(), code, detail)
        pipe.xadd(self.ws.dead_stream, dead_fields(code, detail, fields, mid, attempts, self.consumer))
        self.metrics.dead.labels(code).inc()
        self.counts["dead"] += 1

    # -- waiting ----------------------------------------------------------------
    def _sleep(self, seconds: float) -> None:
        """Sleep in slices so a stop request is noticed promptly."""
        self.state = "idle"
        end = time.monotonic() + seconds
        while not self.stop_requested and (left := end - time.monotonic()) > 0:
            time.sleep(min(left, 0.1))

    def _until_connected(self, first: bool = False) -> None:
        """Ping the streams (and make sure of the group) and the index, with capped backoff, until both answer.

        The index is probed too because it may live on another server: going
        back to work while only the streams are up would fail every message
        again.  Nothing is lost while waiting: unacknowledged messages stay
        pending in Redis and are re-read from the start of our pending list.
        """
        while True:
            try:
                self.client.ping()
                ensure_group(self.client, self.ws.input_stream, self.ws.group)
                self.dd.article_count()  # one GET on the Redis index, free in process
                if not first:
                    log.info("reconnected to Redis")
                return
            except REDIS_AWAY as exc:
                delay = self.backoff.next()
                log.warning("Redis unavailable (%s); retrying in %.1fs", exc, delay)
                self._sleep(delay)
                if self.stop_requested:
                    raise StopNow() from None


def run_worker(deduper: Deduper, streams_url: str, settings: WorkerSettings, *, burst: bool = False) -> int:
    """What ``dedup worker`` and ``python worker.py`` run: configure logging, build the worker, run it."""
    logging.basicConfig(level=settings.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    problem = cluster_slot_problem(streams_url, settings.stream_keys())
    if problem:
        deduper.close()
        raise ValueError(problem)
    client = connect(streams_url, settings.block_ms)
    worker = Worker(deduper, client, settings, burst=burst)
    try:
        return worker.run()
    finally:
        client.close()
        deduper.close()
