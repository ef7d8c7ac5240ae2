"""Redis key layout of the story index: every key is built by :func:`key`.

All keys of one index live under one namespace ``ns`` (``--namespace``,
default ``dedup``), so several indexes can share a server and
``SCAN MATCH ns:*`` lists everything one index owns.

=====================  ==========  =====================================================
key                    type        contents
=====================  ==========  =====================================================
``ns:meta``            hash        ``fingerprint`` (JSON of the signature settings) and
                                   ``codec`` (record format version); checked on open
``ns:a:{id}``          hash        article record: ``t`` title, ``x`` zlib(text),
                                   ``s`` source, ``p`` published, ``u`` url, ``d`` day
                                   ordinal or empty, ``m`` minhash ``<u4`` bytes, ``ti``
                                   term ids ``<u4``, ``tw`` term weights ``<f4``,
                                   ``sh`` shingles ``<u4``, ``h`` sentence hashes ``<u4``
``ns:b:{band}``        hash        LSH buckets of band ``band``: field = the band's raw
                                   value (``rows`` x 4 bytes), value = the ids in that
                                   bucket joined by NUL
``ns:n``               string      number of stored articles (deleted at zero)
``ns:s:{story}``       set         article ids of a story (gone when empty)
``ns:story_of``        hash        article id -> story id
``ns:stories``         zset        story id scored by its last change (``ns:clock``)
``ns:clock``           string      change counter behind ``ns:stories`` (deleted with
                                   the last story)
``ns:days``            zset        dated article ids scored by publication day (retention)
``ns:sent``            hash        sentence hash (decimal) -> number of articles with it
=====================  ==========  =====================================================

Deleting every article leaves exactly one key, ``ns:meta``: it records which
settings the namespace was built with, so it outlives its articles on purpose.

The Lua scripts build the same keys from the prefix ``ns:`` (see
:data:`LUA_KEY_HELPERS`); that Lua helper and :func:`key` are the only two
places that know the layout, and ``tests/test_index_redis.py`` checks they
agree.  Keys are not hash-tagged: the index needs a single Redis (or a
primary with replicas), not Redis Cluster.
"""

from __future__ import annotations

KINDS = {"meta", "a", "b", "n", "s", "story_of", "stories", "clock", "sent", "days"}


def key(ns: str, kind: str, *parts: object) -> str:
    """The one function that names a key: ``ns:kind[:part...]``.

    Parts are joined verbatim: article and story ids may contain ``:`` (the
    METER ids contain ``/``), which is fine because a kind has a fixed
    number of parts and the id is always the last one.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown key kind {kind!r}")
    return ":".join([ns, kind, *(str(p) for p in parts)])


def bucket_key(ns: str, band: int) -> str:
    """The hash holding every bucket of one LSH band.

    One hash field per bucket instead of one set key per bucket: most buckets
    hold a single article, and a hash field costs about half of what a key
    with its own set costs (measured: 176 -> ~80 bytes per bucket entry).
    """
    return key(ns, "b", band)


def check_id(article_id: str) -> None:
    """Bucket values join ids with NUL, so an id must not contain one.

    Raises :class:`~dedup.records.BadInput`, so a batch reports the item and goes on.
    """
    from ..records import BadInput

    if not article_id or "\0" in article_id:
        raise BadInput(f"article {article_id!r}", "the id is empty or contains a NUL character",
                       "use ids without control characters")


# Lua twin of key(): every script starts with these helpers.  ``P`` is "ns:".
LUA_KEY_HELPERS = """
local P = ARGV[1] .. ':'
local function K_article(id) return P .. 'a:' .. id end
local function K_story(s) return P .. 's:' .. s end
local function K_bucket(band) return P .. 'b:' .. band end
local K_STORY_OF = P .. 'story_of'
local K_STORIES = P .. 'stories'
local K_CLOCK = P .. 'clock'
local K_SENT = P .. 'sent'
local K_COUNT = P .. 'n'
local K_DAYS = P .. 'days'
"""
