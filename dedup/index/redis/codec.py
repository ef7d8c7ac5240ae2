"""Compact, pickle-free encoding of an :class:`~dedup.records.Entry` as one binary string.

An article is one Redis string (``ns:a:{handle}``), not a hash of fields:
a hash whose values exceed ``hash-max-listpack-value`` (64 bytes) becomes a
real hash table and pays a dictionary entry per field (~1 kB per article
with eleven fields), where one string costs one key.

Layout (little-endian), so the Lua scripts can read what they need with
``struct.unpack`` and ``string.sub``; declared once, in :data:`HEADER_FIELDS`, :data:`ARRAYS` and
:data:`STRINGS`, from which both this codec and the scripts' constants
(:mod:`dedup.index.redis.scripts`) are built::

    header (54 bytes): u8 version, u8 flags (bit 0: dated, bit 1: features left out),
                       i32 day, u32 n_minhash, u32 n_terms, u32 n_shingles, u32 n_sentences,
                       u32 len(id), len(title), len(source), len(published), len(url), len(ztext),
                       u32 n_words, u32 lead
    signature:         minhash u32[n_minhash], term ids u24[n_terms],
                       term weight levels u8[n_terms], shingles u24[n_shingles]
    rest:              sentence hashes u32[n_sentences], id, title, source,
                       published, url (UTF-8), zlib(text)
    trailer:           words u32[n_words] (with the features only: the word CRCs in
                       text order that the template test reads, ``Signature.words``;
                       the header's ``lead`` is ``Signature.lead``)

**Features left out.**  The term vector, trigram and word hashes that verification
compares (~1.7 kB of a ~3 kB record) are a pure function of the title
and text, which the record keeps anyway for the dashboard.  When the
signature says it was signed from exactly this title and text
(``Signature.source_crc``, set by :meth:`dedup.service.Deduper.prepare`),
the record stores only the minhash (n_terms = n_shingles = 0, flag bit 1),
and reading it back signs the text again
(:func:`dedup.signature.sign_articles`, the same path ``prepare`` takes), so
the features come back bit-identical.  The stored minhash is checked
against the re-signed one: a record signed by a different normalization or
signing (another dedup version, other settings) is refused, naming the key,
rather than verified against features it was never indexed with.  Signing
again costs ~0.25 ms per record in a batch, ~1 ms alone (measured on a slow
2-core VM), paid only when a record is read: the
Redis index caches signatures by handle, so a worker signs another
worker's article at most once, and display readers (:func:`decode_entry`)
sign only if they touch ``entry.signature``.  A signature made by hand (tests)
or one whose text was edited after signing is stored in full, as before.

Nothing here can execute code when decoded (unlike pickle), and a damaged or
foreign record raises :class:`CorruptRecord` naming the key and the part
instead of returning garbage.  Term ids and shingles are 24-bit hashes and a
term weight is one byte: signing quantizes the weights
(:func:`~dedup.signature.quantized_weights`), so the float32 weights decoded
here are bit-identical to the ones the in-process index compares, and Redis
and the in-process index cluster identically.  A signature that was not
quantized that way is refused rather than stored lossily.
"""

from __future__ import annotations

import struct
import zlib
from collections import namedtuple
from typing import Any, NamedTuple

import numpy as np

from ...records import DedupError, Entry, Signature
from ...settings import Settings
from ...signature import quantized_weights, sign_articles, source_crc, weight_levels

CODEC_VERSION = "5"
_VERSION_BYTE = 5
DATED, DERIVED = 1, 2  # header flag bits

# The record layout.  The header's fields in order, each with its struct code (little-endian, no padding):
HEADER_FIELDS = (
    ("version", "B"), ("flags", "B"), ("day", "i"),
    ("n_minhash", "I"), ("n_terms", "I"), ("n_shingles", "I"), ("n_sentences", "I"),
    ("len_id", "I"), ("len_title", "I"), ("len_source", "I"), ("len_published", "I"), ("len_url", "I"),
    ("len_ztext", "I"), ("n_words", "I"), ("lead", "I"),
)
# then the arrays, in order: name (as errors name the part), bytes per item, the header field counting them;
# the first four are the signature (signature_size)
ARRAYS = (
    ("minhash", 4, "n_minhash"), ("term ids", 3, "n_terms"), ("term weights", 1, "n_terms"),
    ("shingles", 3, "n_shingles"), ("sentence hashes", 4, "n_sentences"),
)
# then the strings, each as long as its header field says: UTF-8 texts, and zlib of the article's text last
STRINGS = (("id", "len_id"), ("title", "len_title"), ("source", "len_source"), ("published", "len_published"),
           ("url", "len_url"), ("ztext", "len_ztext"))
# then the trailer: arrays after the strings, which the scripts never read (they stop at the id)
TRAILER = (("words", 4, "n_words"),)
HEADER = struct.Struct("<" + "".join(code for _, code in HEADER_FIELDS))
HEADER_SIZE = HEADER.size
Header = namedtuple("Header", [name for name, _ in HEADER_FIELDS])  # a header's values by field name
ITEM_SIZE = {name: size for name, size, _ in ARRAYS}
# zlib level of the stored text: on the bench corpus (2.2 kB texts) level 3 takes 33 us and 1,140 bytes an
# article, level 6 (zlib's default) 41 us and 1,114 bytes: 2% of a streamed article's time for 1% of its
# bytes in Redis.  Any level decodes the same way.
ZLIB_LEVEL = 3


class CorruptRecord(DedupError):
    """A stored record cannot be decoded (written by another program or damaged)."""

    def __init__(self, key: str, field: str, reason: str) -> None:
        super().__init__(
            f"{key}: field {field!r} {reason}; delete the article (dedup delete) and ingest it again"
        )


_FIT_U4 = {np.dtype(t) for t in ("uint8", "uint16", "uint32")}  # always in range: no min/max pass needed


def _u4(values: object, name: str) -> bytes:
    arr = np.asarray(values)
    if arr.dtype not in _FIT_U4 and arr.size and (arr.min() < 0 or arr.max() > 0xFFFFFFFF):
        raise ValueError(f"{name} values must fit in 32 unsigned bits")
    return np.ascontiguousarray(arr, dtype="<u4").tobytes()


def _u3(values: np.ndarray, name: str) -> bytes:
    """24-bit little-endian values, three bytes each."""
    arr = np.asarray(values)
    if arr.size and (arr.min() < 0 or arr.max() > 0xFFFFFF):
        raise ValueError(f"{name} must be 24-bit hashes (see signature.HASH_MASK)")
    return np.ascontiguousarray(arr, dtype="<u4").view(np.uint8).reshape(-1, 4)[:, :3].tobytes()


def encode_entry(entry: Entry, keep_features: bool = False) -> bytes:
    """The stored record of ``entry``: header, signature (the minhash alone when the features can be
    signed again from the text and ``keep_features`` is off, see the module docstring), then the
    display fields."""
    sig = entry.signature
    text = entry.text.encode("utf-8")
    strings = [s.encode("utf-8") for s in (entry.id, entry.title, entry.source, entry.published, entry.url)]
    ztext = zlib.compress(text, ZLIB_LEVEL)
    hashes = entry.sentence_hashes
    try:  # a list of ints: struct packs it ~8x faster than a numpy round trip (0.3 vs 2.7 us)
        sent = struct.pack(f"<{len(hashes)}I", *hashes)
    except struct.error:
        sent = _u4(np.asarray(hashes, dtype=np.int64), "sentence hashes")  # says what is wrong
    if len(sig.term_ids) != len(sig.term_weights):
        raise ValueError("term ids and term weights differ in length")
    flags = 0 if sig.day is None else DATED
    if not keep_features and sig.source_crc is not None and sig.source_crc == source_crc(strings[1], text):
        flags |= DERIVED
        features = [b""]
        n_terms = n_shingles = 0
        words = b""
    else:
        levels = sig.term_levels
        if levels is None or len(levels) != len(sig.term_weights):
            levels = weight_levels(sig.term_weights)
        if levels is None:
            raise ValueError("term weights are not quantized; build signatures with dedup.signature (sign, sign_many)")
        features = [_u3(sig.term_ids, "term ids"), np.asarray(levels, dtype=np.uint8).tobytes(),
                    _u3(sig.shingles, "shingles")]
        n_terms, n_shingles = len(sig.term_ids), len(sig.shingles)
        words = b"" if sig.words is None else _u4(sig.words, "words")
    lengths = {field: len(s) for (_, field), s in zip(STRINGS, [*strings, ztext])}
    header = HEADER.pack(*Header(version=_VERSION_BYTE, flags=flags, day=0 if sig.day is None else int(sig.day),
                                 n_minhash=len(sig.minhash), n_terms=n_terms, n_shingles=n_shingles,
                                 n_sentences=len(sent) // 4, n_words=len(words) // 4,
                                 lead=sig.lead if words else 0, **lengths))
    return b"".join([header, _u4(sig.minhash, "minhash"), *features, sent, *strings, ztext, words])


def signature_size(n_minhash: int, n_terms: int, n_shingles: int) -> int:
    """Bytes of the signature part of a record (the Lua twin: ``rec`` in lua/lib_records.lua)."""
    return (ITEM_SIZE["minhash"] * n_minhash + (ITEM_SIZE["term ids"] + ITEM_SIZE["term weights"]) * n_terms
            + ITEM_SIZE["shingles"] * n_shingles)


def _header(blob: bytes, key: str) -> Header:
    if len(blob) < HEADER_SIZE:
        raise CorruptRecord(key, "header", f"is {len(blob)} bytes, shorter than the {HEADER_SIZE}-byte header")
    head = Header._make(HEADER.unpack_from(blob))
    if head.version != _VERSION_BYTE:
        raise CorruptRecord(key, "header", f"has format version {head.version}, expected {_VERSION_BYTE}")
    return head


def _array(blob: bytes, start: int, n: int, size: int, key: str, field: str) -> np.ndarray:
    """n little-endian unsigned values of `size` bytes (4, 3 or 1), as uint32 (uint8 for one byte)."""
    end = start + size * n
    if end > len(blob):
        raise CorruptRecord(key, field, f"runs past the end of the record ({end} > {len(blob)} bytes)")
    # copies: frombuffer views are read-only and tie the array to the reply buffer
    if size == 4:
        return np.frombuffer(blob, dtype="<u4", count=n, offset=start).astype(np.uint32)
    if size == 1:
        return np.frombuffer(blob, dtype=np.uint8, count=n, offset=start).copy()
    out = np.zeros((n, 4), dtype=np.uint8)
    out[:, :3] = np.frombuffer(blob, dtype=np.uint8, count=3 * n, offset=start).reshape(n, 3)
    return out.view("<u4").reshape(n).astype(np.uint32)


class _Parsed(NamedTuple):
    """A record cut into its parts (texts still bytes, ``ztext`` still compressed)."""

    day: int | None
    derived: bool
    minhash: np.ndarray
    ids: np.ndarray
    levels: np.ndarray
    shingles: np.ndarray
    sentences: np.ndarray
    strings: list[bytes]  # id, title, source, published, url, ztext
    words: np.ndarray | None
    lead: int


def _parse(blob: bytes, key: str, num_perm: int) -> _Parsed:
    head = _header(blob, key)
    if head.n_minhash != num_perm:
        raise CorruptRecord(key, "minhash", f"holds {head.n_minhash} hash values, expected num_perm={num_perm}")
    pos = HEADER_SIZE
    arrays = {}
    for name, size, count in ARRAYS:
        n = getattr(head, count)
        arrays[name] = _array(blob, pos, n, size, key, name)
        pos += size * n
        if name == "term weights" and n and not arrays[name].all():
            raise CorruptRecord(key, name, "holds a zero weight level")
    lengths = [getattr(head, field) for _, field in STRINGS]
    trailer = sum(size * getattr(head, count) for _, size, count in TRAILER)
    if pos + sum(lengths) + trailer != len(blob):
        raise CorruptRecord(key, "strings", f"lengths add up to {pos + sum(lengths) + trailer} bytes, "
                            f"record has {len(blob)}")
    strings = []
    for n in lengths:
        strings.append(blob[pos:pos + n])
        pos += n
    for name, size, count in TRAILER:
        arrays[name] = _array(blob, pos, getattr(head, count), size, key, name)
        pos += size * getattr(head, count)
    derived = bool(head.flags & DERIVED)
    if derived and (head.n_terms or head.n_shingles or head.n_words):
        raise CorruptRecord(key, "header", "says the features were left out but holds some")
    return _Parsed(head.day if head.flags & DATED else None, derived, arrays["minhash"], arrays["term ids"],
                   arrays["term weights"], arrays["shingles"], arrays["sentence hashes"], strings,
                   arrays["words"] if head.n_words else None, head.lead)


def _text(p: _Parsed, key: str) -> str:
    try:
        return zlib.decompress(p.strings[5]).decode("utf-8", errors="replace")
    except zlib.error as exc:
        raise CorruptRecord(key, "text", f"is not zlib data ({exc})") from None


def _signatures(parsed: list[tuple[_Parsed, str, str, str]], settings: Settings) -> list[Signature]:
    """Signatures of parsed records (with their keys, titles and texts), signing the derived ones in one batch."""
    out: list[Signature | None] = [None] * len(parsed)
    todo: list[int] = []
    for i, (p, _, _, _) in enumerate(parsed):
        if p.derived:
            todo.append(i)
        else:
            out[i] = Signature(minhash=p.minhash, term_ids=p.ids, term_weights=quantized_weights(p.levels),
                               shingles=p.shingles, day=p.day, term_levels=p.levels, words=p.words,
                               lead=p.lead)
    if todo:
        signed = sign_articles([parsed[i][3] for i in todo], [parsed[i][2] for i in todo],
                               [parsed[i][0].day for i in todo], settings)
        for i, sig in zip(todo, signed):
            p, key = parsed[i][0], parsed[i][1]
            if sig is None or not np.array_equal(sig.minhash, p.minhash):
                raise CorruptRecord(
                    key, "minhash", "differs from the signature of the record's own text: it was written by another "
                    "version of dedup's normalization or signing, or with other signature settings; re-ingest the namespace")
            out[i] = sig
    return out  # type: ignore[return-value]


def decode_signatures(blobs: list[bytes], keys: list[str], settings: Settings) -> list[Signature]:
    """Signatures from full records; the ones stored without features are signed again in one batch."""
    parsed = []
    for blob, key in zip(blobs, keys):
        p = _parse(blob, key, settings.num_perm)
        parsed.append((p, key, p.strings[1].decode("utf-8", errors="replace") if p.derived else "",
                       _text(p, key) if p.derived else ""))
    return _signatures(parsed, settings)


def decode_signature(blob: bytes, key: str, settings: Settings) -> Signature:
    """The signature of one record (see :func:`decode_signatures`)."""
    return decode_signatures([blob], [key], settings)[0]


def record_id(blob: bytes, key: str) -> str:
    """The article id stored in a record (the client maps candidate handles to ids with it)."""
    head = _header(blob, key)
    pos = HEADER_SIZE + signature_size(head.n_minhash, head.n_terms, head.n_shingles) \
        + ITEM_SIZE["sentence hashes"] * head.n_sentences
    lid = head.len_id
    if pos + lid > len(blob):
        raise CorruptRecord(key, "id", f"runs past the end of the record ({pos + lid} > {len(blob)} bytes)")
    return blob[pos:pos + lid].decode("utf-8", errors="replace")


class _StoredEntry(Entry):
    """An entry read from a record stored without features: its signature is signed from the text on
    first use, so readers that only show articles (the dashboard, ``story``) never pay for signing."""

    def __init__(self, *args: Any, pending: tuple[_Parsed, str, Settings] | None = None, **kwargs: Any) -> None:
        self.__dict__["_pending"] = pending
        super().__init__(*args, **kwargs)

    @property  # type: ignore[override]
    def signature(self) -> Signature:
        sig = self.__dict__.get("_signature")
        if sig is None:
            p, key, settings = self.__dict__["_pending"]
            sig = self.__dict__["_signature"] = _signatures([(p, key, self.title, self.text)], settings)[0]
        return sig

    @signature.setter
    def signature(self, value: Signature | None) -> None:
        self.__dict__["_signature"] = value


def decode_entry(blob: bytes, key: str, settings: Settings) -> Entry:
    """The full record (text decompressed)."""
    p = _parse(blob, key, settings.num_perm)
    aid, title, source, published, url = (b.decode("utf-8", errors="replace") for b in p.strings[:5])
    fields = dict(id=aid, title=title, text=_text(p, key), source=source, published=published, url=url,
                  sentence_hashes=[int(h) for h in p.sentences])
    if p.derived:
        return _StoredEntry(signature=None, pending=(p, key, settings), **fields)  # type: ignore[arg-type]
    return Entry(signature=_signatures([(p, key, "", "")], settings)[0], **fields)
