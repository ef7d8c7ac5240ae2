"""Event evidence in Redis, both layouts: the event keys each article holds, their postings, and the
event links between articles (:mod:`dedup.events` decides what they are; this stores and fetches them).

A mixin of :class:`dedup.index.redis.RedisIndex` (and so of the spread layout).  Everything lives in
the namespace's slot ``{ns}``, beside the handle table (keys ``ek``, ``ep``, ``el`` in
:mod:`dedup.index.redis.keys`; a key's bytes name its postings in hex), so on a Redis Cluster every
command and script here stays in one slot.  The writes are one script (``lua/events.lua``) that records
keys (replacing those an article held) and links of stored articles only, and ``del_article``
(``lua/lib_articles.lua``) removes an article's in the same script that removes the article: delete,
delete_many and retention, a put that replaces a stored id, the spread layout's ``S_DELETE``.  Nothing
outlives its article, and :meth:`drop` takes them with the rest of ``{ns}:*``.  Reads are one pipelined
round trip.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Callable

from .errors import guarded
from .stories import text_of

CHUNK = 256  # articles (or links) per script call: a call holds other clients up for milliseconds at most


class RedisEvents:
    """Event keys, postings and links.  The index provides the client, the key builder and its scripts."""

    _r: Any
    _k: Callable[..., str]
    _run: Callable[..., Any]

    def _write_events(self, mode: str, items: list[list[Any]]) -> None:
        for start in range(0, len(items), CHUNK):
            self._run("EVENTS", mode, *[x for item in items[start:start + CHUNK] for x in item])

    def _hkeys(self, kind: str, names: Iterable[str]) -> dict[str, list[bytes]]:
        """HKEYS of ``{ns}:<kind>:<name>`` for each name, in one round trip; empty ones left out."""
        names = list(dict.fromkeys(names))
        if not names:
            return {}
        pipe = self._r.pipeline(transaction=False)
        for name in names:
            pipe.hkeys(self._k(kind, name))
        return {name: found for name, found in zip(names, pipe.execute()) if found}

    @guarded
    def add_event_keys(self, keys: Mapping[str, Sequence[bytes]]) -> None:
        """Record, per article id, the event keys it holds (postings key -> article ids, and the article's own list)."""
        items = []
        for aid, held in keys.items():
            hexes = sorted({bytes(k).hex() for k in held})
            items.append([aid, len(hexes), *hexes])  # (replacing what the article held: none clears it)
        self._write_events("k", items)

    @guarded
    def event_keys(self, ids: Iterable[str]) -> dict[str, list[bytes]]:
        """The keys each stored article holds (ids without keys are left out)."""
        found = self._hkeys("ek", ids)
        return {aid: sorted(bytes.fromhex(text_of(h)) for h in hexes) for aid, hexes in found.items()}

    @guarded
    def key_holders(self, keys: Iterable[bytes]) -> dict[bytes, list[str]]:
        """Article ids holding each key, sorted (keys nobody holds are left out)."""
        found = self._hkeys("ep", (bytes(k).hex() for k in keys))
        return {bytes.fromhex(h): sorted(text_of(i) for i in ids) for h, ids in found.items()}

    @guarded
    def add_event_links(self, pairs: Iterable[tuple[str, str]]) -> None:
        """Store article-article event links; a link is symmetric (a, b) == (b, a)."""
        self._write_events("l", [[a, b] for a, b in dict.fromkeys(tuple(sorted(p)) for p in pairs)])

    @guarded
    def event_links(self, ids: Iterable[str]) -> dict[str, list[str]]:
        """The article ids linked to each id, sorted (ids without links are left out)."""
        return {aid: sorted(text_of(i) for i in found) for aid, found in self._hkeys("el", ids).items()}
