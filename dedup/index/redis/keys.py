"""Redis key layout of the story index: every key is built by :func:`key`.

All keys of one index live under one namespace ``ns`` (``--namespace``,
default ``dedup``) and carry it as a hash tag, ``{ns}:...``, so every key of
an index lands in one Redis Cluster slot: the scripts touch many keys
atomically, which a cluster only allows within a slot.  ``SCAN MATCH {ns}:*``
lists everything one index owns (braces are not glob characters).

==========================  ==========  ================================================
key                         type        contents
==========================  ==========  ================================================
``{ns}:meta``               hash        ``fingerprint``: JSON of the signature settings
                                        and the record codec version; checked on open;
                                        ``epoch``: random, set when the namespace is
                                        claimed (see below); ``v``: write version, moved by
                                        every write script; ``seq``: last handle given
                                        out (``seq0``: where the epoch started it);
                                        ``clock``: change counter behind ``stories``;
                                        ``ifloor``: the lowest ``i`` shard retention
                                        still reads (retention.py)
``{ns}:a:{handle}``         string      article record (:mod:`dedup.index.redis.codec`),
                                        keyed by the article's integer handle
``{ns}:h:{shard}``          hash        article id -> handle (decimal), linear-hashed by a
                                        hash of the id (see ``idhash`` in lua/lib_shards.lua)
``{ns}:b:{period}:{shard}`` hash        LSH buckets of the articles published in one
                                        period of ``PERIOD_DAYS`` days (``u``: undated),
                                        linear-hashed into small shards: field = u16
                                        band + the band's raw value, value = the
                                        bucket's entries (``<u4`` handle + the day's
                                        place in the period, 255: undated)
``{ns}:e:{period}:{shard}`` hash        sentence counts of the articles published in one
                                        period (as for buckets), linear-hashed the same
                                        way: field = ``<u4`` sentence hash, value =
                                        count; a sentence's count is the sum over periods
``{ns}:i:{n}``              hash        handle info of handles 64n to 64n + 63 (sharded
                                        by range: new articles write the newest shard):
                                        field = ``<u4`` handle, value = ``<i4`` day +
                                        story id
``{ns}:lh``                 hash        linear-hashing state of each ``b:{period}``,
                                        ``e:{period}`` and ``h``: level, split pointer,
                                        number of fields (``<family>l``, ``p``, ``n``)
``{ns}:n``                  string      number of stored articles
``{ns}:s:{story}``          hash        article ids of a story -> "" (a hash, not a set:
                                        small ones stay listpacks; gone when empty)
``{ns}:stories``            zset        story id scored by its last change (``clock``)
``{ns}:days``               hash        publication day -> number of stored articles
                                        published that day (retention finds old ones
                                        in the ``i`` family)
``{ns}:split``              hash        story id -> "": stories that lost an article and
                                        whose re-split is not written yet (cleared by
                                        ``RESPLIT``; a crash in between leaves it for
                                        :func:`dedup.stories.finish_splits`)
``{ns}:todo``               zset        spread layout only: handle + bucket fields of
                                        articles whose buckets may lag their commit
                                        (see :mod:`dedup.index.redis.spread`)
``{ns}:ek:{id}``            hash        event keys an article holds (hex) -> "" (see
                                        :mod:`dedup.index.redis.events`)
``{ns}:ep:{hex key}``       hash        event key postings: ids of the articles holding
                                        the key -> ""
``{ns}:el:{id}``            hash        ids of the articles event-linked with this one
                                        -> "" (each link is stored both ways)
``{ns:b<g>...}:b:{shard}``  hash        spread layout only: the buckets of band group
                                        ``g``, in a slot of their own (:func:`band_namespace`)
==========================  ==========  ================================================

Counters and shards are deleted as they empty, and ``{ns}:meta`` goes with
the last article (and, in the spread layout, the last ``todo`` entry):
deleting every article leaves no key at all.  Handles, the write version and
the clock then start again, which is safe because of the epoch: every
process sends the epoch it knows with each script call (after the namespace
in ``ARGV[1]``, ``"ns epoch"``), and a story-slot script whose epoch is not
the stored one writes nothing and fails with ``DEDUP-EPOCH``.  The process
then claims the namespace again (a new epoch if it is empty, checking the
settings), forgets every handle, version and story it cached, and redoes the
call.  A read-only script on a namespace with no ``meta`` passes: there is
nothing to read, and no read recreates a key.

The Lua scripts build the same keys (``lua/lib_keys.lua``); those
helpers and :func:`key` are the only two places that know the layout, and
``tests/test_index_redis.py`` checks they agree.
"""

from __future__ import annotations

from redis.crc import key_slot

from ...records import BadInput

# version of this layout, part of the namespace fingerprint: a namespace written with another layout is refused
LAYOUT_VERSION = "7"

KINDS = {"meta", "a", "h", "b", "e", "i", "lh", "n", "s", "stories", "days", "todo", "split", "ek", "ep", "el"}


def key(ns: str, kind: str, *parts: object) -> str:
    """The one function that names a key: ``{ns}:kind[:part...]``.

    Parts are joined verbatim: article and story ids may contain ``:`` (the
    METER ids contain ``/``), which is fine because a kind has a fixed
    number of parts and the id is always the last one.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown key kind {kind!r}")
    return ":".join(["{" + ns + "}", kind, *(str(p) for p in parts)])


def band_namespace(ns: str, group: int, groups: int) -> str:
    """The hash tag of band group ``group`` (of ``groups``) in the spread layout
    (:mod:`dedup.index.redis.spread`): ``ns:b<group>``, or ``ns:b<group>.<n>`` with the first ``n`` that
    puts the tag's slot in the group's share of the 16384 slots, so :func:`key` names the group's keys
    ``{ns:b<group>...}:b:<shard>``.

    Evenly spaced slots spread the groups evenly over the masters of a cluster whose slots were
    handed out in equal ranges (what ``redis-cli --cluster create`` does); with CRC16 luck alone, 8 or
    16 tags often pile onto one master.  A namespace cannot contain ``:``, so no namespace's own tag
    ``{ns}`` is ever a group's tag.
    """
    base = f"{ns}:b{group}"
    n = 0
    while True:
        tag = base if n == 0 else f"{base}.{n}"
        if key_slot(tag.encode()) * groups // 16384 == group:
            return tag
        n += 1


def shard_index(h: int, level: int, split: int, initial: int) -> int:
    """Which shard of a linear-hashed family holds a field whose hash is ``h``.

    Linear hashing grows the number of shards one split at a time, so each
    shard stays a small listpack-encoded hash (about ``LOAD`` fields) at any
    index size without ever rehashing everything at once.
    """
    m = initial * 2**level
    i = h % m
    return h % (2 * m) if i < split else i


# A bucket entry is a 4-byte handle + a 2-byte day tag, so readers filter by the publication window
# without reading anything per candidate (the Lua twins: day_tag / tag_within in lua/lib_buckets.lua).
UNDATED_TAG = 65535


def day_tag(day: int | None) -> int:
    """The day tag of a bucket entry: the day modulo 65535, 65535 when undated."""
    return UNDATED_TAG if day is None else int(day) % 65535


# Buckets are partitioned by publication period: an article's entries go in the family of its period
# (``{ns}:b:<period>:<shard>``), and a lookup reads the periods within its window (for most articles only
# its own) and the undated family.  The working set of a lookup then stays the same size however many
# periods the index holds (docs/redis.md, "Growth curve").  Sixteen days: with the default one-day window,
# only one article in eight (those within a day of a period's edge) reads two periods.
PERIOD_DAYS = 16


def bucket_family(tag: int) -> str:
    """The bucket family of an entry with day tag ``tag``: ``b:<period>``, ``b:u`` when undated
    (the Lua twin is ``bfam`` in lua/lib_buckets.lua)."""
    return "b:u" if tag == UNDATED_TAG else f"b:{tag // PERIOD_DAYS}"


def period_entry(handle: bytes, day: int | None) -> bytes:
    """A bucket entry of the one-slot layout: the 4-byte handle + the day's place in its period (255:
    undated), the period's family giving the rest (the Lua twin is ``period_entry``)."""
    tag = day_tag(day)
    return handle + bytes([255 if tag == UNDATED_TAG else tag % PERIOD_DAYS])


def read_families(tag: int, window: int) -> set[str] | None:
    """The bucket families an article tagged ``tag`` reads within ``window`` days (None: every one, for an
    undated article or an unbounded window), whether or not they hold anything yet (the Lua twin,
    ``read_fams``, leaves out the empty ones)."""
    if tag == UNDATED_TAG or window >= 32767:
        return None
    return {bucket_family((tag + d) % 65535) for d in range(-window, window + 1)} | {"b:u"}


def tag_within(tag: int, day: int | None, window: int) -> bool:
    """Might an entry tagged ``tag`` be within ``window`` days of ``day``?  Modular, so a day 179 years
    away can pass: verification checks the exact days again."""
    if day is None or tag == UNDATED_TAG or window >= 32767:
        return True
    d = abs(tag - day_tag(day))
    return d <= window or 65535 - d <= window


def check_id(article_id: str) -> None:
    """Refuse empty ids and ids with NUL: ids end up in messages, files and story names, where a NUL
    is almost always a reader bug rather than a real id (buckets hold handles, so the index itself would cope).

    Raises :class:`~dedup.records.BadInput`, so a batch reports the item and goes on.
    """
    if article_id and "\0" not in article_id:
        return
    raise BadInput(f"article {article_id!r}", "the id is empty or contains a NUL character",
                   "use ids without control characters")


def entries_in(value: bytes | None) -> dict[bytes, int]:
    """Handle -> day tag of a bucket value (6-byte entries)."""
    out: dict[bytes, int] = {}
    if value:
        for j in range(0, len(value), 6):
            out.setdefault(value[j:j + 4], int.from_bytes(value[j + 4:j + 6], "little"))
    return out
