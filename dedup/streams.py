"""Redis Streams I/O shared by ``dedup enqueue`` and the worker.

The stream message format is the contract between producers, workers and
consumers (documented in ``docs/worker.md``), so it lives in one place:
input messages carry one field, ``article`` (a JSON article, raw bytes);
output and dead-letter messages are written by :func:`assignment_fields`
and :func:`dead_fields`.  Everything is bytes on the wire so a dead letter
can carry the producer's payload back unchanged, even when it is not UTF-8.
"""

from __future__ import annotations

import json
from typing import Any, Iterable, Mapping

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from .readers import article_from_json
from .records import Article, Assignment, BadInput

ARTICLE_FIELD = b"article"

# Connection problems: Redis is (maybe briefly) gone.  They are never the
# message's fault, so they cost no attempt; the worker waits and reconnects.
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    ConnectionError,
)


class Rejected(Exception):
    """A message that can never be clustered: it goes to the dead-letter stream.

    ``code`` is a stable machine-readable reason (``bad_json``, ``missing_id``,
    ...); ``detail`` is the human explanation.
    """

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail


def connect(url: str, block_ms: int = 0) -> redis.Redis:
    """A bytes-mode client: payloads stay raw so dead letters keep them exactly.

    The socket timeout exceeds the longest blocking read, so a silent
    (half-open) connection surfaces as a TimeoutError instead of a hang.

    Retries are off, explicitly: stream commands are not safe to repeat
    blindly.  A re-sent ``XREADGROUP >`` whose first reply was lost returns
    only newer messages and strands the lost batch in our pending list until
    XAUTOCLAIM (a minute by default); a re-sent MULTI publishes twice.
    ``from_url`` happens to leave retries off in redis-py 8, but ``Redis()``
    turns them on by default since 6, so we do not rely on it.  The worker
    handles connection errors itself: it reconnects and re-reads its pending
    list (tested with a proxy that loses one reply); ``dedup enqueue``
    reports the error.
    """
    options = dict(decode_responses=False, socket_connect_timeout=2.0, socket_timeout=block_ms / 1000.0 + 10.0,
                   retry=Retry(NoBackoff(), 0))
    if url.startswith(CLUSTER_SCHEME):
        from redis.cluster import RedisCluster

        return RedisCluster.from_url("redis://" + url[len(CLUSTER_SCHEME):], **options)  # type: ignore[return-value]
    return redis.Redis.from_url(url, **options)


CLUSTER_SCHEME = "redis+cluster://"


def cluster_slot_problem(url: str, keys: list[str]) -> str | None:
    """Why these stream keys cannot serve a worker on the Redis Cluster at ``url`` (None: they can).

    The worker publishes a batch's outputs and dead letters in one MULTI and acknowledges in another,
    and a cluster runs a MULTI only within one slot: the keys must share a hash tag.
    """
    if not url.startswith(CLUSTER_SCHEME):
        return None
    from redis.crc import key_slot

    if len({key_slot(k.encode()) for k in keys}) == 1:
        return None
    return (f"on a Redis Cluster the worker's streams must share one hash tag, so that it can publish and "
            f"acknowledge a batch atomically ({', '.join(keys)} do not): name them like "
            "--input-stream '{dedup}:in' --output-stream '{dedup}:out' --dead-stream '{dedup}:dead'")


def ensure_group(client: redis.Redis, stream: str, group: str) -> None:
    """Create the consumer group (and stream) if missing, reading from the start.

    Starting at ``0`` rather than ``$`` means articles enqueued before the
    first worker ever ran are still processed.
    """
    try:
        client.xgroup_create(stream, group, id="0", mkstream=True)
    except redis.exceptions.ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise


def article_json(article: Article) -> bytes:
    """An Article as the JSON our reader accepts (the enqueue side of the contract)."""
    obj: dict[str, Any] = {"id": article.id, "text": article.text}
    if article.title:
        obj["title"] = article.title
    if article.source:
        obj["source"] = article.source
    if article.published:
        obj["published"] = article.published.isoformat()
    if article.url:
        obj["url"] = article.url
    return json.dumps(obj, ensure_ascii=False).encode("utf-8")


def enqueue(client: redis.Redis, stream: str, payloads: Iterable[bytes], chunk: int = 500) -> int:
    """XADD every payload as an ``article`` field, pipelined in chunks; returns the count."""
    n = 0
    pipe = client.pipeline(transaction=False)
    for payload in payloads:
        pipe.xadd(stream, {ARTICLE_FIELD: payload})
        n += 1
        if n % chunk == 0:
            pipe.execute()
    pipe.execute()
    return n


_BAD_INPUT_CODES = (
    ("missing id", "missing_id"),
    ("empty text", "empty_text"),
    ("text is", "too_large"),
    ("expected a JSON object", "not_object"),
)


def code_of(exc: BadInput) -> str:
    """Map a core BadInput to a stable reason code for dead-letter consumers."""
    for prefix, code in _BAD_INPUT_CODES:
        if exc.reason.startswith(prefix):
            return code
    return "bad_input"


def parse_message(fields: Mapping[bytes, bytes] | None, where: str, max_chars: int) -> Article:
    """Turn one input message into an Article or raise :class:`Rejected`.

    The byte-size check runs before decoding so a huge body is refused
    without parsing it (a UTF-8 character is at most 4 bytes, so a payload
    over ``4 * max_chars`` plus room for the JSON fields cannot fit).
    """
    if not fields or ARTICLE_FIELD not in fields:
        raise Rejected("missing_field", "message has no 'article' field")
    raw = fields[ARTICLE_FIELD]
    if len(raw) > 4 * max_chars + 65536:
        raise Rejected("too_large", f"payload is {len(raw):,} bytes, over the limit of {max_chars:,} characters")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Rejected("not_utf8", f"payload is not UTF-8 (first bad byte at offset {exc.start})") from None
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise Rejected("bad_json", f"malformed JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from None
    try:
        return article_from_json(obj, where)
    except BadInput as exc:
        raise Rejected(code_of(exc), str(exc)) from None


def message_ms(message_id: bytes | str) -> int:
    """The server time (ms) at which a stream entry was added, from its id."""
    mid = message_id.decode() if isinstance(message_id, bytes) else message_id
    return int(mid.split("-", 1)[0])


def assignment_fields(a: Assignment, message_id: bytes, rank: int | None = None,
                      story_size: int | None = None) -> dict[bytes, bytes]:
    """The output message of one clustered article (see docs/worker.md)."""
    out = {
        b"id": a.article_id.encode(),
        b"story": a.story.encode(),
        b"action": a.action.encode(),
        b"merged": ",".join(a.merged).encode(),
        b"message_id": message_id,
    }
    if rank is not None:
        out[b"rank"] = str(rank).encode()
    if story_size is not None:
        out[b"story_size"] = str(story_size).encode()
    return out


def dead_fields(code: str, detail: str, fields: Mapping[bytes, bytes] | None, message_id: bytes,
                attempts: int, consumer: str) -> dict[bytes, bytes]:
    """A dead letter: why, the original bytes, and where it came from."""
    payload = (fields or {}).get(ARTICLE_FIELD)
    if payload is None:  # no article field: keep whatever the producer sent
        payload = json.dumps({k.decode("utf-8", "replace"): v.decode("utf-8", "replace")
                              for k, v in (fields or {}).items()}).encode()
    return {
        b"reason": code.encode(),
        b"detail": detail.encode("utf-8", "replace"),
        b"payload": payload,
        b"message_id": message_id,
        b"attempts": str(attempts).encode(),
        b"consumer": consumer.encode(),
    }
