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

import hashlib
import math
import zlib
from collections.abc import Sequence
from functools import lru_cache

import numpy as np
import wordfreq
from numpy.lib.stride_tricks import as_strided
from wordfreq import freq_to_zipf, zipf_to_freq
from wordfreq.numbers import digit_freq, smash_numbers
from datasketch import LeanMinHash, MinHash

from .hashtable import BandTable, fmix64
from .records import Signature
from .settings import Settings
from .text import NON_CONTENT, EURO_MARK, POUND_MARK, headline_line, normalize, token_text

IDF_CEILING = 8.0  # zipf 8 ~ "the"; a word never seen in English text gets idf 8
IDF_FLOOR = 0.3
_ZIPF_ZERO = zipf_to_freq(0.0)  # wordfreq's floor: Zipf 0


def term_hash(term: str) -> int:
    """Stable 32-bit hash of a term (CRC32: fast, in the standard library, same in every process)."""
    return zlib.crc32(term.encode("utf-8"))


def _hash_bytes(b: bytes) -> int:
    return zlib.crc32(b)


def idf(term: str) -> float:
    """How informative a word is: 8 minus its Zipf frequency in general English."""
    return float(max(IDF_CEILING - _zipf(term), IDF_FLOOR))


@lru_cache(maxsize=1)
def _frequencies() -> dict[str, float]:
    return wordfreq.get_frequency_dict("en", wordlist="best")


def _zipf(term: str) -> float:
    """wordfreq's Zipf frequency of a word.

    For alphabetic words this reads wordfreq's frequency table directly
    (2 us instead of 28 us a word: ``zipf_frequency`` re-tokenizes every
    query), and for plain digit strings it applies wordfreq's own number
    estimate to the table (12 us instead of ~115 us; numbers are a sixth of
    the new words of a news batch).  The values are identical (checked in
    tests); other tokens with digits or symbols go through ``zipf_frequency``.
    """
    if term.isalpha():
        f = _frequencies().get(term)
        return round(math.log10(f) + 9, 2) if f else 0.0
    if term.isascii() and term.isdigit():
        return _zipf_digits(term)
    return wordfreq.zipf_frequency(term, "en")


def _zipf_digits(term: str) -> float:
    """``wordfreq.zipf_frequency`` of a string of ASCII digits, without its tokenizer."""
    smashed = smash_numbers(term)  # digit runs become zeros: "1985" -> "0000"
    f = _frequencies().get(smashed)
    if not f:
        return 0.0
    if smashed != term:
        f *= digit_freq(term)  # wordfreq's share of this number among numbers of its shape
    f = max(1.0 / (1.0 / f), _ZIPF_ZERO)  # the same float steps and floor as wordfreq
    f = round(f, math.floor(-math.log(f, 10)) + 3)
    return round(freq_to_zipf(f), 2)


_FMIX = (np.uint32(16), np.uint32(0x85EBCA6B), np.uint32(13), np.uint32(0xC2B2AE35))


def _fmix(hashes: np.ndarray) -> np.ndarray:
    """The 32-bit finalizer datasketch's affine32 scheme applies to an input hash."""
    s1, m1, s2, m2 = _FMIX
    with np.errstate(over="ignore"):
        hv = hashes.astype(np.uint32)
        hv = hv ^ (hv >> s1)
        hv = hv * m1
        hv = hv ^ (hv >> s2)
        hv = hv * m2
        return hv ^ (hv >> s1)


def _sorted_unique(values: np.ndarray) -> np.ndarray:
    """Sorted distinct values (``np.unique`` without its hash-table path, ~20x slower here on uint64)."""
    values = np.sort(values)
    if len(values) < 2:
        return values
    keep = np.empty(len(values), dtype=bool)
    keep[0] = True
    np.not_equal(values[1:], values[:-1], out=keep[1:])
    return values[keep]


def _key_term_order(seg: np.ndarray, w: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Order of terms by article, then weight (heaviest first), then hash: ``lexsort((ids, -w, seg))``.

    Packs the three into one uint64 per term (article number, rank of the
    weight among the batch's distinct weights, hash) so one integer argsort
    does what a three-key lexsort did at ten times the cost.  Falls back to
    lexsort when the batch is too large to pack.
    """
    distinct, rank = np.unique(w, return_inverse=True)
    rank_bits = max(1, int(len(distinct)).bit_length())
    seg_bits = max(1, int(seg[-1]).bit_length()) if len(seg) else 1
    if rank_bits + seg_bits > 32:
        return np.lexsort((ids, -w, seg))
    heavier_first = np.uint64(len(distinct) - 1) - rank.astype(np.uint64)
    packed = (seg.astype(np.uint64) << np.uint64(32 + rank_bits)) | (heavier_first << np.uint64(32)) | ids
    return np.argsort(packed, kind="stable")


# Token keys.  A token's 64-bit key mixes its first 16 bytes (two little-endian words read straight
# from the batch buffer, bytes past the token masked off) with its length, through the murmur3
# finalizer: one gather and a few vectorized steps per token, whatever its length.  Tokens longer
# than _SHORT bytes (a fraction of a percent of news text) are keyed by BLAKE2b instead.
_SHORT = 16
_ALL = np.uint64(0xFFFFFFFFFFFFFFFF)
_LEN_MIX = np.uint64(0x9E3779B97F4A7C15)


def _low_bytes_mask(n: np.ndarray) -> np.ndarray:
    """A mask keeping the ``n`` low bytes of a word (0 <= n <= 8)."""
    shift = (np.minimum(n, 7) * 8).astype(np.uint64)
    return np.where(n >= 8, _ALL, (np.uint64(1) << shift) - np.uint64(1))


def _token_spans(buf: bytes) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Start, end and 64-bit key of every space-separated token of an ASCII buffer."""
    arr = np.frombuffer(buf, dtype=np.uint8)
    edges = np.flatnonzero(np.diff((arr != 32).view(np.int8), prepend=np.int8(0), append=np.int8(0)) != 0)
    starts, ends = edges[0::2], edges[1::2]
    padded = np.frombuffer(buf + bytes(_SHORT), dtype=np.uint8)
    # the first 16 bytes of every token (one row of an overlapping view per token), as two words
    first = as_strided(padded, shape=(len(buf), _SHORT), strides=(1, 1))[starts].view("<u8")
    length = ends - starts
    low = first[:, 0] & _low_bytes_mask(length)
    high = first[:, 1] & _low_bytes_mask(np.clip(length - 8, 0, 8))
    with np.errstate(over="ignore"):
        keys = fmix64(low ^ fmix64(high ^ (length.astype(np.uint64) * _LEN_MIX)))
    for i in np.flatnonzero(length > _SHORT).tolist():
        digest = hashlib.blake2b(buf[starts[i] : ends[i]], digest_size=8).digest()
        keys[i] = int.from_bytes(digest, "little")
    keys[keys == 0] = 1  # 0 marks an empty slot of the lexicon's BandTable
    return starts, ends, keys


class _Lexicon:
    """Every token seen so far, numbered, with its idf, CRC32, mixed CRC32 and stop-word flag in arrays.

    Tokens are found by their 64-bit key (:func:`_token_spans`) in a
    :class:`~dedup.hashtable.BandTable` (key -> row), so a whole batch
    of tokens is looked up with a few vectorized probes and no Python string
    is made per token: making and looking up those strings took ~60-90
    of the ~300 us an article took at 100k (now ~20).  A token's facts are computed
    once, from its text, the first time it is seen.  Bounded: when it
    holds ``limit`` tokens it starts over (between batches, never during
    one).
    """

    def __init__(self, limit: int = 1 << 20) -> None:
        self.limit = limit
        self.reset()

    def reset(self) -> None:
        self.table = BandTable(1 << 17)  # a news batch meets tens of thousands of words early on
        self.idf = np.zeros(1024, dtype=np.float64)
        self.crc = np.zeros(1024, dtype=np.uint32)
        self.mixed = np.zeros(1024, dtype=np.uint32)
        self.content = np.zeros(1024, dtype=bool)

    def __len__(self) -> int:
        return len(self.table)

    def find(self, keys: np.ndarray) -> np.ndarray:
        """Row of each key, -1 where unknown."""
        rows = np.full(len(keys), -1, dtype=np.int64)
        q, found = self.table.find(keys, unique=True)
        rows[q] = found
        return rows

    def add(self, terms: list[str], keys: np.ndarray) -> None:
        """Number new tokens (with their keys), computing their facts together (one numpy call per fact)."""
        n = len(self.table)
        end = n + len(terms)
        if end > len(self.idf):
            size = max(end, 2 * len(self.idf))
            self.idf = np.resize(self.idf, size)
            self.crc = np.resize(self.crc, size)
            self.mixed = np.resize(self.mixed, size)
            self.content = np.resize(self.content, size)
        hashes = np.array([term_hash(t) for t in terms], dtype=np.uint32)
        self.idf[n:end] = [max(IDF_CEILING - _zipf(t), IDF_FLOOR) for t in terms]
        self.crc[n:end] = hashes
        self.mixed[n:end] = _fmix(hashes)
        self.content[n:end] = [t not in NON_CONTENT for t in terms]
        self.table.add(keys, np.arange(n, end))

    def rows(self, buf: bytes, starts: np.ndarray, ends: np.ndarray, keys: np.ndarray) -> np.ndarray:
        """The row of each token of ``buf`` (spans and keys from :func:`_token_spans`), new ones numbered first."""
        rows = self.find(keys)
        missing = np.flatnonzero(rows < 0)
        if len(missing):
            new, first = np.unique(keys[missing], return_index=True)
            at = missing[first]
            terms = [
                buf[s:e].decode("ascii").replace(POUND_MARK, "£").replace(EURO_MARK, "€")
                for s, e in zip(starts[at].tolist(), ends[at].tolist())
            ]
            self.add(terms, new)
            rows[missing] = self.find(keys[missing])
        return rows


_LEX = _Lexicon()


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


def trigram_mix(h: np.ndarray) -> np.ndarray:
    """Hash of each run of three consecutive word hashes (positions 0..len-3)."""
    with np.errstate(over="ignore"):
        return h[:-2] * _MIX[0] + ((h[1:-1] << np.uint32(7)) | (h[1:-1] >> np.uint32(25))) * _MIX[1] + h[2:] * _MIX[2]


def trigrams_of(crc: np.ndarray) -> np.ndarray:
    """The 24-bit trigram hashes of one text's word CRCs in text order, as signing hashes them (a text
    of fewer than three words has its words instead): ``Signature.shingles`` before sorting."""
    crc = np.asarray(crc, dtype=np.uint32)
    return ((trigram_mix(crc) & HASH_MASK) if len(crc) >= 3 else crc & HASH_MASK).astype(np.uint32)


def minhash_values(hashes: np.ndarray, num_perm: int, seed: int) -> np.ndarray:
    """MinHash of already-hashed terms, equal to datasketch's affine32 ``update_batch``.

    datasketch's per-object set-up (argument checks, a list of encoded
    terms, a Python hash call per term) cost ~50 us per article against
    ~5 us here; ``tests/test_signature.py`` checks the values are identical.
    """
    a, b = _permutations(num_perm, seed)
    with np.errstate(over="ignore"):
        return (_fmix(hashes)[:, None] * a + b).min(axis=0)


def sign(clean_text: str, day: int | None, settings: Settings) -> Signature:
    """Build the signature of a normalized text. Raises ValueError when it has no words to match on."""
    sig = sign_many([clean_text], [day], settings)[0]
    if sig is None:
        raise ValueError("no words to match on after normalization")
    return sig


def source_crc(title: bytes, text: bytes) -> int:
    """CRC-32 of an article's UTF-8 title and text: what ``Signature.source_crc`` records.

    A cheap fingerprint (~1 us for a 2.4 kB article) that lets a store tell,
    without signing again, that a signature is the signing of the text next
    to it; it is not a defence against tampering (the decoder's minhash
    check is the integrity test).
    """
    return zlib.crc32(text, zlib.crc32(title))


def sign_articles(texts: list[str], titles: list[str], days: list[int | None], settings: Settings,
                  cleans: list[str] | None = None) -> list[Signature | None]:
    """Normalize and sign raw article texts (None where no word is left), recording their ``source_crc``.

    :meth:`dedup.service.Deduper.prepare_many` signs with it (passing the
    ``cleans`` it normalized already, for its input checks and sentence
    hashes), and so does the Redis codec to read a record whose term vector
    and trigrams were left out: one path, so both give the same signature
    bit for bit.
    """
    if cleans is None:
        cleans = [normalize(t, ti)[0] for t, ti in zip(texts, titles)]
    sigs = sign_many(cleans, days, settings)
    for sig, text, title in zip(sigs, texts, titles):
        if sig is not None:
            sig.source_crc = source_crc(title.encode("utf-8"), text.encode("utf-8"))
    return sigs


# Term ids and trigram hashes keep 24 bits: stored in 3 bytes instead of 4.  Two articles of ~150 terms
# and ~185 trigrams then share ~0.002 hash values by chance, against the >=6 shared trigrams
# (min_reuse 0.035) that count as text reuse.
HASH_MASK = np.uint32(0xFFFFFF)


def _unit_scale(sum_sq: np.ndarray) -> np.ndarray:
    """float32 factor that brings integer weight levels with these sums of squares to unit norm."""
    return (1.0 / np.sqrt(np.asarray(sum_sq, dtype=np.float64))).astype(np.float32)


def quantized_weights(levels: np.ndarray) -> np.ndarray:
    """The unit-norm float32 weights of a vector of weight levels (uint8, 1..255, heaviest at 255).

    Signatures hold ``levels * scale`` with ``scale`` computed from the
    levels alone, so a store can keep one byte per term and give back the
    very same float32 weights: the in-process and the Redis index then see
    bit-identical cosines and cluster identically.
    """
    levels = np.asarray(levels, dtype=np.uint8)
    if levels.size == 0:
        return np.empty(0, dtype=np.float32)
    if levels.max() != 255 or levels.min() == 0:
        raise ValueError("weight levels run from 1 to 255, the heaviest word at 255")
    return levels.astype(np.float32) * _unit_scale(np.sum(levels.astype(np.int64) ** 2))


def weight_levels(weights: np.ndarray) -> np.ndarray | None:
    """The levels behind signature weights (inverse of :func:`quantized_weights`), or None if the
    weights did not come from levels (then storing one byte per term would change them)."""
    weights = np.asarray(weights, dtype=np.float32)
    if weights.size == 0:
        return np.empty(0, dtype=np.uint8)
    top = float(weights.max())
    if not top > 0:
        return None
    levels = np.rint(weights.astype(np.float64) / top * 255.0)
    if levels.min() < 1 or levels.max() > 255:
        return None
    levels = levels.astype(np.uint8)
    return levels if np.array_equal(quantized_weights(levels), weights) else None


def _segments(seg: np.ndarray, count: int) -> np.ndarray:
    """Start of each segment 0..count-1 in a sorted segment column, plus the end."""
    return np.searchsorted(seg, np.arange(count + 1))


def sign_many(clean_texts: list[str], days: list[int | None], settings: Settings) -> list[Signature | None]:
    """Signatures of a batch of normalized texts (None for a text with no words to match on).

    The per-article work left in Python is tokenizing and numbering the
    words; everything numeric runs once per batch over all its articles,
    with each array row tagged by its article (the *segment*) and every
    sort and reduction keyed on it.  An article's signature does not
    depend on the batch it came in (tests check ``sign_many`` against
    one-at-a-time ``sign``): numpy's per-call overhead, not arithmetic, was
    most of signing one article at a time.
    """
    lex = _LEX
    if len(lex) >= lex.limit:
        lex.reset()
    out: list[Signature | None] = [None] * len(clean_texts)
    # Tokens of all texts in one buffer (a space between texts), hashed and looked up at once.
    texts = [token_text(t) for t in clean_texts]
    buf = " ".join(texts).encode("ascii")
    starts, ends, token_keys = _token_spans(buf)
    text_starts = np.cumsum([0] + [len(t) + 1 for t in texts[:-1]])
    token_seg = np.searchsorted(text_starts, starts, side="right") - 1
    token_rows = lex.rows(buf, starts, ends, token_keys)
    content = lex.content[token_rows]
    rows_all, seg_all = token_rows[content], token_seg[content]
    counts = np.bincount(seg_all, minlength=len(clean_texts))
    keep = np.flatnonzero(counts).tolist()
    if not keep:
        return out
    m = len(keep)
    lengths = counts[keep].astype(np.int64)
    rows = rows_all.astype(np.uint64)
    word_seg = np.repeat(np.arange(m, dtype=np.uint64), lengths)  # segments run in text order

    # Terms of each article with their counts: unique (article, word number) pairs.
    pairs, tf = np.unique((word_seg << np.uint64(32)) | rows, return_counts=True)
    term_seg = (pairs >> np.uint64(32)).astype(np.int64)
    term_row = (pairs & np.uint64(0xFFFFFFFF)).astype(np.int64)
    ids = lex.crc[term_row]
    w = (1.0 + np.log(tf)) * lex.idf[term_row]

    # Key terms: per article, heaviest first, ties broken by hash; the first key_terms of each.
    order = _key_term_order(term_seg, w, ids)
    starts = _segments(term_seg[order], m)
    rank = np.arange(len(order)) - np.repeat(starts[:-1], np.diff(starts))
    key = order[rank < settings.key_terms]
    a, b = _permutations(settings.num_perm, settings.seed)
    with np.errstate(over="ignore"):
        values = lex.mixed[term_row[key]][:, None] * a + b
    key_starts = _segments(term_seg[key], m)[:-1]
    minhashes = np.minimum.reduceat(values, key_starts, axis=0)

    # Word vectors sorted by 24-bit term hash; words whose hashes collide share one weight (their sum).
    ids = ids & HASH_MASK
    order = np.argsort((term_seg.astype(np.uint64) << np.uint64(32)) | ids, kind="stable")
    ids, w, seg = ids[order], w[order], term_seg[order]
    first = np.ones(len(ids), dtype=bool)
    first[1:] = (ids[1:] != ids[:-1]) | (seg[1:] != seg[:-1])
    if not first.all():
        at = np.flatnonzero(first)
        w = np.add.reduceat(w, at)
        ids, seg = ids[at], seg[at]
    # Weights quantized to 1..255 of the article's heaviest word (a word that rounds to 0 is dropped),
    # then scaled to unit norm by a factor that is a function of the levels alone (quantized_weights).
    vec_starts = _segments(seg, m)
    heaviest = np.maximum.reduceat(w, vec_starts[:-1])
    levels = np.rint(w / np.repeat(heaviest, np.diff(vec_starts)) * 255.0).astype(np.uint8)
    if not levels.all():
        keep_terms = levels > 0
        ids, seg, levels = ids[keep_terms], seg[keep_terms], levels[keep_terms]
        vec_starts = _segments(seg, m)
    sq = levels.astype(np.int64) ** 2
    scale = _unit_scale(np.add.reduceat(sq, vec_starts[:-1]))
    weights = levels.astype(np.float32) * np.repeat(scale, np.diff(vec_starts))

    # Content-word trigrams: runs of three words inside one article; short articles use their words.
    word_crc = lex.crc[rows.astype(np.int64)]
    word_seg_i = word_seg.astype(np.int64)
    if len(word_crc) >= 3:
        tri = trigram_mix(word_crc) & HASH_MASK
        inside = word_seg_i[:-2] == word_seg_i[2:]
        tri, tri_seg = tri[inside], word_seg_i[:-2][inside]
    else:
        tri, tri_seg = np.empty(0, dtype=np.uint32), np.empty(0, dtype=np.int64)
    short = np.flatnonzero(lengths < 3)
    if len(short):
        is_short = np.isin(word_seg_i, short)
        tri = np.concatenate([tri, word_crc[is_short] & HASH_MASK])
        tri_seg = np.concatenate([tri_seg, word_seg_i[is_short]])
    grams = _sorted_unique((tri_seg.astype(np.uint64) << np.uint64(32)) | tri.astype(np.uint64))
    gram_seg = (grams >> np.uint64(32)).astype(np.int64)
    grams = (grams & np.uint64(0xFFFFFFFF)).astype(np.uint32)
    gram_starts = _segments(gram_seg, m)
    word_starts = np.concatenate([[0], np.cumsum(lengths)])
    # content words of each text's headline line: its tokens are the first of the text's tokens
    head_tokens = np.array([len(token_text(headline_line(t)).split()) for t in clean_texts], dtype=np.int64)
    first_token = np.searchsorted(token_seg, np.arange(len(clean_texts)))
    content_before = np.concatenate([[0], np.cumsum(content)])
    leads = content_before[first_token + head_tokens] - content_before[first_token]

    for j, i in enumerate(keep):
        out[i] = Signature(
            minhash=minhashes[j],
            term_ids=ids[vec_starts[j] : vec_starts[j + 1]],
            term_weights=weights[vec_starts[j] : vec_starts[j + 1]],
            term_levels=levels[vec_starts[j] : vec_starts[j + 1]],
            shingles=grams[gram_starts[j] : gram_starts[j + 1]],
            day=days[i],
            words=word_crc[word_starts[j] : word_starts[j + 1]],
            lead=int(leads[i]),
        )
    return out


def _distinct(a: Sequence[Signature]) -> tuple[list[Signature], list[int]]:
    """The distinct signatures of ``a`` (by identity) and, for each pair, which of them it has.

    A batch's pairs repeat their first signatures (an article against each
    of its candidates): each is then laid out and searched once.
    """
    seen: dict[int, int] = {}
    owners = [seen.setdefault(id(x), len(seen)) for x in a]
    firsts = {i: x for x, i in zip(a, owners)}
    return [firsts[i] for i in range(len(seen))], owners


def _pair_hits(a_parts: list[np.ndarray], owners: list[int],
               b_parts: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Look each ``b_parts[k]`` up in ``a_parts[owners[k]]`` (all sorted), every pair in one pass.

    Each value is tagged with the number of its ``a_parts`` in the high 32
    bits, so one ``searchsorted`` over the concatenated ``a_parts`` does all
    pairs.  Returns, for the concatenated ``b_parts``, a position in the
    concatenated ``a_parts`` (clipped to the last one), whether the value is
    there, and its pair number.  One set of numpy calls for all the
    candidate pairs of a batch instead of one per article: numpy's per-call
    overhead, not the look-ups, was most of the verification time.
    """
    count = len(b_parts)
    b_len = np.fromiter(map(len, b_parts), dtype=np.int64, count=count)
    segment = np.repeat(np.arange(count), b_len)
    if len(a_parts) == 1:
        # one article against its candidates (streaming): the values need no tag, which saves half the
        # numpy calls; positions and hits are the ones the tagged search would give
        keys = a_parts[0]
        b_keys = np.concatenate(b_parts) if count > 1 else b_parts[0]
        if not len(keys) or not len(b_keys):
            return np.zeros(len(segment), dtype=np.intp), np.zeros(len(segment), dtype=bool), segment
        pos = np.searchsorted(keys, b_keys)
        np.minimum(pos, len(keys) - 1, out=pos)
        return pos, keys[pos] == b_keys, segment
    a_len = np.fromiter(map(len, a_parts), dtype=np.int64, count=len(a_parts))
    if not a_len.sum() or not b_len.sum():
        return np.zeros(len(segment), dtype=np.intp), np.zeros(len(segment), dtype=bool), segment
    tag = np.arange(len(a_parts), dtype=np.uint64) << np.uint64(32)
    a_keys = np.concatenate(a_parts).astype(np.uint64) | np.repeat(tag, a_len)
    b_keys = np.concatenate(b_parts).astype(np.uint64) | np.repeat(tag[owners], b_len)
    pos = np.searchsorted(a_keys, b_keys)
    np.minimum(pos, len(a_keys) - 1, out=pos)
    return pos, a_keys[pos] == b_keys, segment


def pair_cosines(a: Sequence[Signature], b: Sequence[Signature]) -> list[float]:
    """Cosine of ``a[k]`` and ``b[k]`` for every k (unit-norm sparse vectors with sorted ids).

    Products are float32 and summed in float64 in ascending term order, so
    the cosine of (a, b) equals that of (b, a) exactly and does not depend
    on the other pairs of the batch: a pair's verdict never depends on which
    of the two arrived first or what came with them.  (Every position's
    product is summed, the misses' as 0.0, which leaves each sum unchanged.)
    """
    if not a:
        return []
    firsts, owners = _distinct(a)
    pos, hit, segment = _pair_hits([x.term_ids for x in firsts], owners, [y.term_ids for y in b])
    if not hit.any():
        return [0.0] * len(a)
    a_weights = firsts[0].term_weights if len(firsts) == 1 else np.concatenate([x.term_weights for x in firsts])
    b_weights = b[0].term_weights if len(b) == 1 else np.concatenate([y.term_weights for y in b])
    products = a_weights[pos] * b_weights
    products = np.where(hit, products, np.float32(0)).astype(np.float64)
    return np.bincount(segment, weights=products, minlength=len(a)).tolist()


def pair_reuses(a: Sequence[Signature], b: Sequence[Signature]) -> list[float]:
    """For every k, the share of the shorter of ``a[k]`` and ``b[k]``'s content trigrams found in the other."""
    if not a:
        return []
    firsts, owners = _distinct(a)
    _, hit, segment = _pair_hits([x.shingles for x in firsts], owners, [y.shingles for y in b])
    common = np.bincount(segment, weights=hit, minlength=len(a)).tolist()
    out = []
    for c, x, y in zip(common, a, b):
        n = min(len(x.shingles), len(y.shingles))
        out.append(c / n if n else 0.0)
    return out


def cosines(a: Signature, others: list[Signature]) -> list[float]:
    """Cosine of ``a`` with each of ``others`` (see :func:`pair_cosines`)."""
    return pair_cosines([a] * len(others), others)


def reuses(a: Signature, others: list[Signature]) -> list[float]:
    """Share of the shorter article's content trigrams found in the other, for each of ``others``."""
    return pair_reuses([a] * len(others), others)


def cosine(a: Signature, b: Signature) -> float:
    """Cosine of two signatures' word vectors (the same arithmetic as :func:`cosines`)."""
    return cosines(a, [b])[0]


def reuse(a: Signature, b: Signature) -> float:
    """Share of the shorter article's content trigrams that the other one has too."""
    return reuses(a, [b])[0]


def band_hashes(minhash: np.ndarray, bands: int, rows: int) -> list[bytes]:
    """One bucket key per LSH band: the band's hash values as bytes."""
    arr = np.ascontiguousarray(minhash, dtype="<u4").reshape(bands, rows)
    return [arr[i].tobytes() for i in range(bands)]
