"""Compact, pickle-free encoding of an :class:`~dedup.records.Entry` as a Redis hash.

Arrays are stored as raw little-endian bytes (``numpy.tobytes``), text as
zlib, short strings as UTF-8.  Nothing here can execute code when decoded
(unlike pickle), and a damaged or foreign record raises
:class:`CorruptRecord` naming the key and field instead of returning
garbage.  Term weights stay float32: float16 would save ~2 bytes per term
but can flip a cosine that sits on ``min_cosine``, and then Redis and the
in-process index would not cluster identically.
"""

from __future__ import annotations

import zlib
from typing import Mapping

import numpy as np

from ..records import DedupError, Entry, Signature

CODEC_VERSION = "1"

# field -> numpy dtype of array fields
ARRAYS = {"m": "<u4", "ti": "<u4", "tw": "<f4", "sh": "<u4", "h": "<u4"}
SIGNATURE_FIELDS = ("m", "ti", "tw", "sh", "d")
ENTRY_FIELDS = ("t", "x", "s", "p", "u", "h", *SIGNATURE_FIELDS)


class CorruptRecord(DedupError):
    """A stored record cannot be decoded (written by another program or damaged)."""

    def __init__(self, key: str, field: str, reason: str) -> None:
        super().__init__(
            f"{key}: field {field!r} {reason}; delete the article (dedup delete) and ingest it again"
        )


def _array(values: object, dtype: str, name: str) -> bytes:
    arr = np.asarray(values)
    if arr.size and dtype.endswith("u4") and (arr.min() < 0 or arr.max() > 0xFFFFFFFF):
        raise ValueError(f"{name} values must fit in 32 unsigned bits")
    return np.ascontiguousarray(arr, dtype=dtype).tobytes()


def encode_entry(entry: Entry) -> dict[str, bytes]:
    """The hash fields of ``ns:a:{id}``."""
    sig = entry.signature
    return {
        "t": entry.title.encode("utf-8"),
        "x": zlib.compress(entry.text.encode("utf-8"), 6),
        "s": entry.source.encode("utf-8"),
        "p": entry.published.encode("utf-8"),
        "u": entry.url.encode("utf-8"),
        "d": b"" if sig.day is None else str(int(sig.day)).encode(),
        "m": _array(sig.minhash, ARRAYS["m"], "minhash"),
        "ti": _array(sig.term_ids, ARRAYS["ti"], "term ids"),
        "tw": _array(sig.term_weights, ARRAYS["tw"], "term weights"),
        "sh": _array(sig.shingles, ARRAYS["sh"], "shingles"),
        "h": _array(np.asarray(entry.sentence_hashes, dtype=np.int64), ARRAYS["h"], "sentence hashes"),
    }


def _get(fields: Mapping[str, bytes | None], name: str, key: str) -> bytes:
    value = fields.get(name)
    if value is None:
        raise CorruptRecord(key, name, "is missing")
    return value


def _decode_array(fields: Mapping[str, bytes | None], name: str, key: str) -> np.ndarray:
    raw = _get(fields, name, key)
    dtype = np.dtype(ARRAYS[name])
    if len(raw) % dtype.itemsize:
        raise CorruptRecord(key, name, f"has {len(raw)} bytes, not a multiple of {dtype.itemsize}")
    # copy: frombuffer views are read-only and tie the array to the reply buffer
    return np.frombuffer(raw, dtype=dtype).astype(dtype.newbyteorder("="))


def _text(fields: Mapping[str, bytes | None], name: str, key: str) -> str:
    return _get(fields, name, key).decode("utf-8", errors="replace")


def decode_signature(fields: Mapping[str, bytes | None], key: str, num_perm: int) -> Signature:
    """Signature from the fields of ``key``; checks the array shapes agree."""
    minhash = _decode_array(fields, "m", key)
    if len(minhash) != num_perm:
        raise CorruptRecord(key, "m", f"holds {len(minhash)} hash values, expected num_perm={num_perm}")
    ids = _decode_array(fields, "ti", key)
    weights = _decode_array(fields, "tw", key)
    if len(ids) != len(weights):
        raise CorruptRecord(key, "tw", f"has {len(weights)} weights for {len(ids)} term ids")
    day_raw = _get(fields, "d", key)
    try:
        day = int(day_raw) if day_raw else None
    except ValueError:
        raise CorruptRecord(key, "d", f"is {day_raw[:20]!r}, not a day number") from None
    return Signature(minhash=minhash, term_ids=ids, term_weights=weights,
                     shingles=_decode_array(fields, "sh", key), day=day)


def decode_entry(article_id: str, fields: Mapping[str, bytes | None], key: str, num_perm: int) -> Entry:
    """The full record of ``key`` (text decompressed)."""
    try:
        text = zlib.decompress(_get(fields, "x", key)).decode("utf-8", errors="replace")
    except zlib.error as exc:
        raise CorruptRecord(key, "x", f"is not zlib data ({exc})") from None
    return Entry(
        id=article_id,
        title=_text(fields, "t", key),
        text=text,
        source=_text(fields, "s", key),
        published=_text(fields, "p", key),
        url=_text(fields, "u", key),
        signature=decode_signature(fields, key, num_perm),
        sentence_hashes=[int(h) for h in _decode_array(fields, "h", key)],
    )
