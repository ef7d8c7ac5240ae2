"""Signatures: what the index stores of each article.

Three parts, each for one job:

* a **MinHash** over the article's *key terms* (its most informative words,
  weighted by term frequency and by how rare the word is in English).  Wire
  rewrites keep the names, places and rare words of the story while
  rewording everything else, so the key-term sets of two rewrites overlap
  far more than their shingle sets do: LSH over key terms finds them.
* an **IDF-weighted word vector** (unit norm) for the cosine check.  Word
  rarity comes from a fixed English frequency table (``wordfreq``), not from
  the corpus seen so far, so whether two articles match depends only on the
  two articles: the clustering is the same whatever order they arrive in.
* the hashed **content-word trigrams**, whose overlap is the text-reuse
  evidence that separates a rewrite from another wire's story on the event.

MinHash values are computed by datasketch (affine32 scheme) with a CRC32
input hash, so every stored signature can be read back as a datasketch
``LeanMinHash``.
"""

from __future__ import annotations

import math
import zlib
from collections import Counter
from functools import lru_cache

import numpy as np
import wordfreq
from datasketch import LeanMinHash, MinHash

from .records import Signature
from .settings import Settings
from .text import content_words

IDF_CEILING = 8.0  # zipf 8 ~ "the"; a word never seen in English text gets idf 8
IDF_FLOOR = 0.3


def term_hash(term: str) -> int:
    """Stable 32-bit hash of a term (CRC32: fast, in the standard library, same in every process)."""
    return zlib.crc32(term.encode("utf-8"))


def _hash_bytes(b: bytes) -> int:
    return zlib.crc32(b)


def idf(term: str) -> float:
    """How informative a word is: 8 minus its Zipf frequency in general English."""
    return _lexicon(term)[0]


_LEXICON: dict[str, tuple[float, int]] = {}
_LEXICON_MAX = 1 << 20


def _lexicon(term: str) -> tuple[float, int]:
    """(idf, hash) of a word, memoized: wordfreq look-ups are the slow part of signing."""
    hit = _LEXICON.get(term)
    if hit is None:
        if len(_LEXICON) >= _LEXICON_MAX:
            _LEXICON.clear()
        hit = (max(IDF_CEILING - _zipf(term), IDF_FLOOR), term_hash(term))
        _LEXICON[term] = hit
    return hit


@lru_cache(maxsize=1)
def _frequencies() -> dict[str, float]:
    return wordfreq.get_frequency_dict("en", wordlist="best")


def _zipf(term: str) -> float:
    """wordfreq's Zipf frequency of a word.

    For alphabetic words this reads wordfreq's frequency table directly
    (2 us instead of 28 us a word: ``zipf_frequency`` re-tokenizes every
    query); the values are identical (checked in tests).  Tokens with digits
    or symbols go through ``zipf_frequency``, which handles numbers its own way.
    """
    if term.isalpha():
        f = _frequencies().get(term)
        return round(math.log10(f) + 9, 2) if f else 0.0
    return wordfreq.zipf_frequency(term, "en")


@lru_cache(maxsize=8)
def _permutations(num_perm: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    return MinHash(num_perm=num_perm, seed=seed, scheme="affine32").permutations


def minhash_of(terms: list[str], num_perm: int, seed: int) -> np.ndarray:
    """datasketch MinHash (affine32) of a set of terms; returns the uint32 hash values."""
    m = MinHash(
        num_perm=num_perm,
        seed=seed,
        hashfunc=_hash_bytes,
        permutations=_permutations(num_perm, seed),
        scheme="affine32",
    )
    m.update_batch([t.encode("utf-8") for t in terms])
    return m.hashvalues


def as_lean_minhash(sig: Signature, seed: int) -> LeanMinHash:
    """The stored MinHash as a datasketch LeanMinHash (for interoperability and debugging)."""
    return LeanMinHash(seed=seed, hashvalues=sig.minhash, scheme="affine32")


_MIX = (np.uint32(0x9E3779B1), np.uint32(0x85EBCA77), np.uint32(0xC2B2AE3D))


def trigram_hashes(word_hashes: np.ndarray) -> np.ndarray:
    """Sorted unique hashes of consecutive word triples, mixed from the words' own hashes."""
    h = word_hashes.astype(np.uint32)
    if len(h) < 3:
        return np.unique(h)
    with np.errstate(over="ignore"):
        g = h[:-2] * _MIX[0] + ((h[1:-1] << np.uint32(7)) | (h[1:-1] >> np.uint32(25))) * _MIX[1] + h[2:] * _MIX[2]
    return np.unique(g)


_FMIX = (np.uint32(16), np.uint32(0x85EBCA6B), np.uint32(13), np.uint32(0xC2B2AE35))


def minhash_values(hashes: np.ndarray, num_perm: int, seed: int) -> np.ndarray:
    """MinHash of already-hashed terms, equal to datasketch's affine32 ``update_batch``.

    datasketch's per-object set-up (argument checks, a list of encoded
    terms, a Python hash call per term) cost ~50 us per article against
    ~5 us here, where the terms' CRC32s are already known from the word
    vector; ``tests/test_signature.py`` checks the values are identical.
    """
    a, b = _permutations(num_perm, seed)
    s1, m1, s2, m2 = _FMIX
    with np.errstate(over="ignore"):
        hv = hashes.astype(np.uint32)
        hv = hv ^ (hv >> s1)
        hv = hv * m1
        hv = hv ^ (hv >> s2)
        hv = hv * m2
        hv = hv ^ (hv >> s1)
        return (hv[:, None] * a + b).min(axis=0)


def sign(clean_text: str, day: int | None, settings: Settings) -> Signature:
    """Build the signature of a normalized text. Raises ValueError when it has no words to match on."""
    words = content_words(clean_text)
    if not words:
        raise ValueError("no words to match on after normalization")
    counts = Counter(words)
    terms = list(counts)
    lexicon = _LEXICON
    idfs, hashes = zip(*[lexicon.get(t) or _lexicon(t) for t in terms])
    ids = np.array(hashes, dtype=np.uint32)
    w = (1.0 + np.log(np.array(list(counts.values()), dtype=np.float64))) * np.array(idfs, dtype=np.float64)
    key = np.lexsort((ids, -w))[: settings.key_terms]  # heaviest first, ties broken by hash: deterministic
    minhash = minhash_values(ids[key], settings.num_perm, settings.seed)
    word_hashes = np.array(list(map(dict(zip(terms, hashes)).__getitem__, words)), dtype=np.uint32)
    n = len(terms)
    order = np.argsort(ids, kind="stable")
    ids, w = ids[order], w[order]
    if n > 1 and not np.all(ids[1:] != ids[:-1]):  # CRC32 collision between two words: add their weights
        uniq, start = np.unique(ids, return_index=True)
        w = np.add.reduceat(w, start)
        ids = uniq
    w = w / np.linalg.norm(w)
    return Signature(
        minhash=minhash,
        term_ids=ids,
        term_weights=w.astype(np.float32),
        shingles=trigram_hashes(word_hashes),
        day=day,
    )


def _matches(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Positions in sorted ``a`` and ``b`` of the values both hold (binary search: cheap for short arrays)."""
    if len(a) == 0 or len(b) == 0:
        return np.empty(0, dtype=np.intp), np.empty(0, dtype=np.intp)
    pos = np.searchsorted(b, a)
    pos[pos == len(b)] = 0
    hit = b[pos] == a
    return np.flatnonzero(hit), pos[hit]


def cosine(a: Signature, b: Signature) -> float:
    """Cosine of two unit-norm sparse vectors with sorted ids."""
    ia, ib = _matches(a.term_ids, b.term_ids)
    if len(ia) == 0:
        return 0.0
    return float(np.dot(a.term_weights[ia], b.term_weights[ib]))


def reuse(a: Signature, b: Signature) -> float:
    """Share of the shorter article's content trigrams that the other one has too."""
    n = min(len(a.shingles), len(b.shingles))
    if n == 0:
        return 0.0
    small, large = (a.shingles, b.shingles) if len(a.shingles) <= len(b.shingles) else (b.shingles, a.shingles)
    return len(_matches(small, large)[0]) / n


def band_hashes(minhash: np.ndarray, bands: int, rows: int) -> list[bytes]:
    """One bucket key per LSH band: the band's hash values as bytes."""
    arr = np.ascontiguousarray(minhash, dtype="<u4").reshape(bands, rows)
    return [arr[i].tobytes() for i in range(bands)]
