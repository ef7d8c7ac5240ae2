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
``ns:b:{band}:{hex}``  set         article ids whose LSH band ``band`` hashes to ``hex``
``ns:n``               string      number of stored articles (deleted at zero)
``ns:s:{story}``       set         article ids of a story (gone when empty)
``ns:story_of``        hash        article id -> story id
``ns:stories``         zset        story id scored by its last change (``ns:clock``)
``ns:clock``           string      change counter behind ``ns:stories`` (deleted with
                                   the last story)
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

KINDS = {"meta", "a", "b", "n", "s", "story_of", "stories", "clock", "sent"}


def key(ns: str, kind: str, *parts: object) -> str:
    """The one function that names a key: ``ns:kind[:part...]``.

    Parts are joined verbatim: article and story ids may contain ``:`` (the
    METER ids contain ``/``), which is fine because a kind has a fixed
    number of parts and the id is always the last one.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown key kind {kind!r}")
    return ":".join([ns, kind, *(str(p) for p in parts)])


def bucket_key(ns: str, band: int, band_hash: bytes) -> str:
    """Bucket of one LSH band value; hex keeps keys printable in ``redis-cli``."""
    return key(ns, "b", band, band_hash.hex())


# Lua twin of key(): every script starts with these helpers.  ``P`` is "ns:".
LUA_KEY_HELPERS = """
local P = ARGV[1] .. ':'
local function K_article(id) return P .. 'a:' .. id end
local function K_story(s) return P .. 's:' .. s end
local K_STORY_OF = P .. 'story_of'
local K_STORIES = P .. 'stories'
local K_CLOCK = P .. 'clock'
local K_SENT = P .. 'sent'
local K_COUNT = P .. 'n'
"""
