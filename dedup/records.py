"""The records that flow through dedup, in the order they are made.

text -> :class:`Article` (what the feed said) -> normalized text (:mod:`dedup.text`)
-> :class:`Signature` (what the index stores) -> :class:`Assignment` (which
story it joined) -> :class:`RankedVariant` (what it adds to its story).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import numpy as np


class DedupError(Exception):
    """Base class of every error dedup raises on purpose."""


class IndexUnavailable(DedupError):
    """The shared index cannot be reached (after retries); the message names the URL, password masked."""


class IndexMismatch(DedupError):
    """The shared index was built with other signature settings, so its buckets would never match."""


class AccessDenied(IndexUnavailable):
    """The shared index's server refused the URL's password, or the user's ACL forbids a key or command
    the index needs.  An :class:`IndexUnavailable`: the worker waits for the operator to fix the URL or the
    ACL, as it waits for a server that is down, and leaves its messages pending meanwhile."""


class IndexFull(DedupError):
    """The shared index's server is at its memory limit and refused a write; nothing of that write was stored."""


class EvictionUnsafe(DedupError):
    """The shared index's server may evict the index's keys when full, which would corrupt its stories silently."""


class BadInput(DedupError):
    """An input item cannot be clustered.

    ``where`` names the item (file, line, id) so the message tells an editor
    which article to fix; the rest of the batch goes on.
    """

    def __init__(self, where: str, reason: str, fix: str = "") -> None:
        self.where = where
        self.reason = reason
        self.fix = fix
        msg = f"{where}: {reason}"
        if fix:
            msg += f" ({fix})"
        super().__init__(msg)

    def __reduce__(self):  # rebuilt from its parts: worker processes send errors back (--jobs)
        return (type(self), (self.where, self.reason, self.fix))


@dataclass
class Article:
    """One incoming article, as the feed or file gave it."""

    id: str
    text: str
    title: str = ""
    source: str = ""
    published: dt.datetime | None = None
    url: str = ""
    origin: str = ""  # where it came from, for messages: "file.jsonl:12"
    warnings: list[str] = field(default_factory=list)

    @property
    def day(self) -> int | None:
        """Publication day as a proleptic ordinal, the unit of the story window."""
        return self.published.date().toordinal() if self.published else None


@dataclass
class Signature:
    """What the index keeps per article to find and verify rewrites.

    ``minhash`` is a datasketch-compatible affine32 MinHash over the key terms;
    ``term_ids``/``term_weights`` an L2-normalized sparse IDF-weighted word
    vector (sorted ids); ``shingles`` the sorted hashes of content-word
    trigrams (text-reuse evidence).
    """

    minhash: np.ndarray  # uint32[num_perm]
    term_ids: np.ndarray  # uint32, sorted
    term_weights: np.ndarray  # float32, same length, unit norm
    shingles: np.ndarray  # uint32, sorted, unique
    day: int | None
    # the one-byte weight levels behind term_weights when known (signing and decoding set them; a store
    # keeps these instead of the floats), else None and the codec derives and checks them
    term_levels: np.ndarray | None = field(default=None, repr=False, compare=False)
    # checksum of the (title, text) this signature was signed from (dedup.signature.source_crc), set by
    # Deduper.prepare and by decoding; a store that sees it match the entry's text keeps only the minhash
    # and signs the text again when it reads the record back (dedup.index.redis.codec).  None: made by hand.
    source_crc: int | None = field(default=None, repr=False, compare=False)
    # the CRC-32 of each content word in text order (signing sets it, and so does decoding): what tells an
    # outlet's template block from shared text (dedup.templates).  None: made by hand, no template test.
    words: np.ndarray | None = field(default=None, repr=False, compare=False)
    # how many of those words are the text's headline line (dedup.text.headline_line), 0 without one: an
    # outlet template sits at the top of the body, under the headline, as well as at the text's head
    lead: int = field(default=0, repr=False, compare=False)
    # what dedup.templates derives from this signature and keeps for its next pair (a few trigrams)
    derived: dict = field(default_factory=dict, init=False, repr=False, compare=False)


@dataclass
class Entry:
    """An article ready for the index: its record, signature and sentence hashes."""

    id: str
    title: str
    text: str
    source: str
    published: str  # ISO 8601 or ""
    url: str
    signature: Signature
    sentence_hashes: list[int]
    # the term ids of the rarest names the text writes (dedup.events.key_names), which propose its event's
    # candidates.  Preparing an article sets them from the normalized text at hand; None (read back from an
    # index, made by hand): computed from the text when needed.
    key_names: tuple[int, ...] | None = field(default=None, repr=False, compare=False)


@dataclass
class Assignment:
    """The outcome of ingesting one article.

    ``action`` is ``new`` (started a story), ``joined`` (joined one),
    ``merged`` (bridged several stories: ``merged`` lists the story ids that
    were folded into ``story``) or ``replaced`` (a new version of a known id).
    """

    article_id: str
    story: str
    action: str
    merged: list[str] = field(default_factory=list)
    links: list[tuple[str, float, float]] = field(default_factory=list)  # (other id, cosine, reuse)


@dataclass
class RankedVariant:
    """One article of a story, with what it says that no other variant does."""

    id: str
    rank: int
    title: str
    source: str
    published: str
    unique_sentences: list[str]
    unique_information: float
    coverage: float  # share of the story's content this variant carries
    most_complete: bool = False


@dataclass
class Story:
    """A story cluster with its variants ranked by the unique information they add."""

    id: str
    articles: list[RankedVariant]
    headline: str
    sources: list[str]
    first_published: str
    last_published: str

    @property
    def size(self) -> int:
        return len(self.articles)


def parse_published(value: object, where: str) -> tuple[dt.datetime | None, str | None]:
    """Parse a feed timestamp. Returns (datetime, warning)."""
    if value in (None, ""):
        return None, None
    if isinstance(value, (int, float)):
        return dt.datetime.fromtimestamp(float(value), tz=dt.timezone.utc), None
    text = str(value).strip()
    try:
        if text.endswith("Z"):
            text = text[:-1] + "+00:00"
        return dt.datetime.fromisoformat(text), None
    except ValueError:
        return None, f"{where}: published {value!r} is not ISO 8601; treated as undated"
