"""Compact, pickle-free encoding of an :class:`~dedup.records.Entry` as one binary string.

An article is one Redis string (``ns:a:{handle}``), not a hash of fields:
a hash whose values exceed ``hash-max-listpack-value`` (64 bytes) becomes a
real hash table and pays a dictionary entry per field (~1 kB per article
with eleven fields), where one string costs one key.

Layout (little-endian), so the Lua scripts can read what they need with
``struct.unpack`` and ``string.sub`` and the client can decode the
signature from a prefix without the text::

    header (50 bytes): u8 version, u8 flags (bit 0: dated), i32 day,
                       u32 n_minhash, u32 n_terms, u32 n_shingles, u32 n_sentences,
                       u32 len(id), len(title), len(source), len(published), len(url), len(ztext)
    signature:         minhash u32[n_minhash], term ids u24[n_terms],
                       term weight levels u8[n_terms], shingles u24[n_shingles]
    rest:              sentence hashes u32[n_sentences], id, title, source,
                       published, url (UTF-8), zlib(text)

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

import numpy as np

from ..records import DedupError, Entry, Signature
from ..signature import quantized_weights, weight_levels

CODEC_VERSION = "3"
_VERSION_BYTE = 3
HEADER = struct.Struct("<BBiIIIIIIIIII")
HEADER_SIZE = HEADER.size  # 50; the Lua twin hard-codes it (redis_lua.HDR)


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


def encode_entry(entry: Entry) -> bytes:
    """The stored record of ``entry``: header, signature, then the display fields."""
    sig = entry.signature
    strings = [s.encode("utf-8") for s in (entry.id, entry.title, entry.source, entry.published, entry.url)]
    ztext = zlib.compress(entry.text.encode("utf-8"), 6)
    sent = _u4(np.asarray(entry.sentence_hashes, dtype=np.int64), "sentence hashes")
    if len(sig.term_ids) != len(sig.term_weights):
        raise ValueError("term ids and term weights differ in length")
    levels = sig.term_levels
    if levels is None or len(levels) != len(sig.term_weights):
        levels = weight_levels(sig.term_weights)
    if levels is None:
        raise ValueError("term weights are not quantized; build signatures with dedup.signature (sign, sign_many)")
    header = HEADER.pack(
        _VERSION_BYTE, 0 if sig.day is None else 1, 0 if sig.day is None else int(sig.day),
        len(sig.minhash), len(sig.term_ids), len(sig.shingles), len(sent) // 4,
        *(len(s) for s in strings), len(ztext),
    )
    return b"".join([
        header, _u4(sig.minhash, "minhash"), _u3(sig.term_ids, "term ids"), np.asarray(levels, dtype=np.uint8).tobytes(),
        _u3(sig.shingles, "shingles"), sent, *strings, ztext,
    ])


def signature_size(n_minhash: int, n_terms: int, n_shingles: int) -> int:
    """Bytes of the signature part of a record (the Lua twin: ``rec`` in redis_lua)."""
    return 4 * n_minhash + 4 * n_terms + 3 * n_shingles


def _header(blob: bytes, key: str) -> tuple[int, ...]:
    if len(blob) < HEADER_SIZE:
        raise CorruptRecord(key, "header", f"is {len(blob)} bytes, shorter than the {HEADER_SIZE}-byte header")
    fields = HEADER.unpack_from(blob)
    if fields[0] != _VERSION_BYTE:
        raise CorruptRecord(key, "header", f"has format version {fields[0]}, expected {_VERSION_BYTE}")
    return fields


def _array(blob: bytes, start: int, n: int, dtype: str, key: str, field: str) -> np.ndarray:
    end = start + 4 * n
    if end > len(blob):
        raise CorruptRecord(key, field, f"runs past the end of the record ({end} > {len(blob)} bytes)")
    # copy: frombuffer views are read-only and tie the array to the reply buffer
    return np.frombuffer(blob, dtype=dtype, count=n, offset=start).astype(np.dtype(dtype).newbyteorder("="))


def _array3(blob: bytes, start: int, n: int, key: str, field: str) -> np.ndarray:
    """n 24-bit little-endian values as uint32."""
    end = start + 3 * n
    if end > len(blob):
        raise CorruptRecord(key, field, f"runs past the end of the record ({end} > {len(blob)} bytes)")
    out = np.zeros((n, 4), dtype=np.uint8)
    out[:, :3] = np.frombuffer(blob, dtype=np.uint8, count=3 * n, offset=start).reshape(n, 3)
    return out.view("<u4").reshape(n).astype(np.uint32)


def decode_signature(blob: bytes, key: str, num_perm: int) -> Signature:
    """Signature from a record (or its signature prefix); checks the shapes agree."""
    _, flags, day, nm, nt, nsh, *_ = _header(blob, key)
    if nm != num_perm:
        raise CorruptRecord(key, "minhash", f"holds {nm} hash values, expected num_perm={num_perm}")
    pos = HEADER_SIZE
    minhash = _array(blob, pos, nm, "<u4", key, "minhash")
    pos += 4 * nm
    ids = _array3(blob, pos, nt, key, "term ids")
    pos += 3 * nt
    if pos + nt > len(blob):
        raise CorruptRecord(key, "term weights", f"runs past the end of the record ({pos + nt} > {len(blob)} bytes)")
    levels = np.frombuffer(blob, dtype=np.uint8, count=nt, offset=pos)
    if nt and not levels.all():
        raise CorruptRecord(key, "term weights", "holds a zero weight level")
    pos += nt
    shingles = _array3(blob, pos, nsh, key, "shingles")
    return Signature(minhash=minhash, term_ids=ids, term_weights=quantized_weights(levels), shingles=shingles,
                     day=day if flags & 1 else None, term_levels=levels.copy())


def record_id(blob: bytes, key: str) -> str:
    """The article id stored in a record (the client maps candidate handles to ids with it)."""
    _, _, _, nm, nt, nsh, nh, lid, *_ = _header(blob, key)
    pos = HEADER_SIZE + signature_size(nm, nt, nsh) + 4 * nh
    if pos + lid > len(blob):
        raise CorruptRecord(key, "id", f"runs past the end of the record ({pos + lid} > {len(blob)} bytes)")
    return blob[pos:pos + lid].decode("utf-8", errors="replace")


def decode_entry(blob: bytes, key: str, num_perm: int) -> Entry:
    """The full record (text decompressed)."""
    _, _, _, nm, nt, nsh, nh, *lengths = _header(blob, key)
    sig = decode_signature(blob, key, num_perm)
    pos = HEADER_SIZE + signature_size(nm, nt, nsh)
    sent = _array(blob, pos, nh, "<u4", key, "sentence hashes")
    pos += 4 * nh
    if pos + sum(lengths) != len(blob):
        raise CorruptRecord(key, "strings", f"lengths add up to {pos + sum(lengths)} bytes, record has {len(blob)}")
    parts = []
    for n in lengths:
        parts.append(blob[pos:pos + n])
        pos += n
    aid, title, source, published, url = (p.decode("utf-8", errors="replace") for p in parts[:5])
    try:
        text = zlib.decompress(parts[5]).decode("utf-8", errors="replace")
    except zlib.error as exc:
        raise CorruptRecord(key, "text", f"is not zlib data ({exc})") from None
    return Entry(id=aid, title=title, text=text, source=source, published=published, url=url,
                 signature=sig, sentence_hashes=[int(h) for h in sent])
