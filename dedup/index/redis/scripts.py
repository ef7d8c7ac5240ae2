"""The Lua scripts of the Redis index, read once per process from the package's ``lua`` folder.

Every multi-key change runs server-side, atomically, as one script.  A script's text is

* the **prelude**: one ``local NAME = value`` line per entry of :data:`CONSTANTS`, the values the Lua
  shares with Python (record layout from :mod:`~dedup.index.redis.codec`, key layout from
  :mod:`~dedup.index.redis.keys`, shard sizes below), so each is declared once, here or there;
* the shared helpers it needs (``lua/lib_*.lua``);
* its own body (``lua/<name>.lua``, which documents its KEYS and ARGV).

Redis caches one compiled function per script text, so the helpers cost no round trip; but a script
runs its whole prologue on every call (~1 us per 10 function definitions), which is why the band script
of the spread layout, called once per band group and article, takes only the bucket helpers.

:data:`SLOT` holds the scripts of the one-slot layout (:mod:`~dedup.index.redis`), :data:`SPREAD` those of
the spread layout (:mod:`~dedup.index.redis.spread`); :data:`CLAIM` stands alone.  In the story-slot
scripts, ARGV[1] is the namespace and the client's epoch (``"ns epoch"``: each starts with
``check_epoch``), ARGV[2] and ARGV[3] the LSH ``bands`` and ``rows`` (the scripts compute bucket fields
from a stored record themselves, so deleting an article needs no client-side read first), and KEYS[1] is
``{ns}:meta``: it names the slot the script works in, which is how a Redis Cluster client routes the call.
"""

from __future__ import annotations

import functools
from importlib import resources

from . import codec
from .keys import PERIOD_DAYS, UNDATED_TAG

# Linear hashing: start with SHARDS0 shards per family and split one shard
# whenever the family holds more than LOAD fields per shard on average (and
# merge the last split back once it holds under LOAD / 4 per shard).  An
# unsplit shard holds up to ~2 x LOAD, so LOAD = 40 keeps shards under
# Redis's default hash-max-listpack-entries (128), where a hash is a compact
# listpack (~12 bytes per bucket entry) instead of a hash table (~70).
SHARDS0 = 64
LOAD = 40
# a publication period's bucket family starts with fewer shards: an index holds many periods, most of
# them small at first (see keys.PERIOD_DAYS)
PERIOD_SHARDS0 = 8
NODAY = -(2**31)  # day of an undated article in the handle table
# handles per shard of the handle table 'i' (sharded by range): under hash-max-listpack-entries (128)
INFO_SPAN = 64

# Lua's struct codes for the codec's header fields
_LUA_STRUCT = {"B": "B", "i": "i4", "I": "I4"}


def _record_constants() -> dict[str, int | str]:
    """The record layout as the scripts read it: the header through the id's length (``rec`` unpacks
    version, flags, day, the array counts and len_id), the dated flag and each array's bytes per item."""
    names = [name for name, _ in codec.HEADER_FIELDS]
    read = codec.HEADER_FIELDS[:names.index("len_id") + 1]
    out: dict[str, int | str] = {
        "HEADER_SIZE": codec.HEADER_SIZE,
        "RECORD_HEAD": "<" + "".join(_LUA_STRUCT[code] for _, code in read),
        "RECORD_DATED": codec.DATED,
    }
    for name, size, _ in codec.ARRAYS:
        out["RECORD_" + name.upper().replace(" ", "_")] = size
    return out


CONSTANTS: dict[str, int | str] = {
    **_record_constants(),
    "PERIOD_DAYS": PERIOD_DAYS,
    "UNDATED_TAG": UNDATED_TAG,
    "SHARDS0": SHARDS0,
    "PERIOD_SHARDS0": PERIOD_SHARDS0,
    "LOAD": LOAD,
    "NODAY": NODAY,
    "INFO_SPAN": INFO_SPAN,
}


def _lua_literal(value: int | str) -> str:
    if isinstance(value, int):
        return str(value)
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


PRELUDE = "-- constants shared with Python (dedup/index/redis/scripts.py CONSTANTS)\n" + "".join(
    f"local {name} = {_lua_literal(value)}\n" for name, value in CONSTANTS.items())

# the helpers of each kind of script, in the order they build on each other
SLOT_LIBS = ("lib_keys", "lib_records", "lib_shards", "lib_handles", "lib_buckets", "lib_articles")
SPREAD_LIBS = (*SLOT_LIBS, "lib_spread")
BAND_LIBS = ("lib_keys", "lib_shards", "lib_buckets")


@functools.cache
def source(name: str) -> str:
    """The text of ``lua/<name>.lua`` (read once)."""
    return resources.files(__package__).joinpath("lua", name + ".lua").read_text(encoding="utf-8")


# The '#!lua flags=' line of the scripts that declare Redis 7 script flags; the others run in Redis's
# compatibility mode.  BAND is allow-oom: an 'add' completes an article the story slot has committed
# (S_COMMIT), so a server at its maxmemory must not refuse it, or the article would be stored without its
# buckets until the sweep; past the limit it adds at most the buckets and records of one commit (see
# errors.out_of_memory).
FLAGS = {"band": "allow-oom"}


def parts(libs: tuple[str, ...], body: str) -> list[tuple[str, str]]:
    """The pieces a script is assembled from, (name, text) in order: the prelude (after the script's flags,
    if any: a shebang is the first line or none), the helpers, the body."""
    flags = f"#!lua flags={FLAGS[body]}\n" if body in FLAGS else ""
    return [("prelude", flags + PRELUDE), *((lib, source(lib)) for lib in libs), (body, source(body))]


class ScriptSet:
    """The scripts of one key layout: each is an attribute holding its text (``SLOT.FIND``), ``SCRIPTS``
    names them, ``HELPERS`` is the text the story-slot ones start with.  ``own`` gives a script other
    helpers than ``libs``; a ``standalone`` script is its body alone, and not one of ``SCRIPTS``."""

    def __init__(self, libs: tuple[str, ...], names: tuple[str, ...], own: dict[str, tuple[str, ...]],
                 standalone: tuple[str, ...] = ()) -> None:
        self.SCRIPTS = names
        self.HELPERS = PRELUDE + "".join(source(lib) for lib in libs)
        self.LIBS = {name: own.get(name, libs) for name in names}
        for name in names:
            setattr(self, name, "".join(text for _, text in parts(self.LIBS[name], name.lower())))
        for name in standalone:
            setattr(self, name, source(name.lower()))


# CLAIM takes none of the other scripts' arguments (see lua/claim.lua)
SLOT = ScriptSet(SLOT_LIBS, ("PUT", "DELETE", "DELETE_MANY", "RECORDS", "HANDLES", "STORY_OF", "SENT_COUNTS",
                             "SET_STORY", "STORY_SNAPSHOT", "RESPLIT", "FIND", "INGEST", "MAINTAIN", "EVENTS"), {},
                 standalone=("CLAIM",))
# The slot layout's read-only and story scripts (RECORDS, STORY_OF, SENT_COUNTS, SET_STORY, STORY_SNAPSHOT,
# RESPLIT, EVENTS) touch no bucket and serve the spread layout unchanged.  BAND runs in a band group's slot, with
# the group's tag as namespace: the bucket helpers of the one-slot layout, on one family 'b' per group.
SPREAD = ScriptSet(SPREAD_LIBS, ("S_PUT", "S_DELETE", "S_LOOKUP", "S_COMMIT", "S_LINK", "S_CLEAR", "S_TODO", "BAND"),
                   {"BAND": BAND_LIBS})
CLAIM = SLOT.CLAIM
