"""The stored record: compact, pickle-free, and giving back bit-identical signatures."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from dedup.index.redis.codec import (DERIVED, HEADER, HEADER_SIZE, CorruptRecord, decode_entry, decode_signature,
                               decode_signatures, encode_entry, record_id, signature_size)
from dedup.records import Entry, Signature
from dedup.service import Deduper
from dedup.settings import Settings
from dedup.signature import quantized_weights, weight_levels

from .conftest import ROOT

SETTINGS = Settings()


def seed_entries() -> list[Entry]:
    from dedup.readers import read_paths
    dd = Deduper(SETTINGS)
    return [dd.prepare(a) for a in read_paths([str(ROOT / "seeds")])]


def test_round_trip_gives_back_the_very_same_signature_and_fields():
    """Redis and the in-process index compare the same float32 weights, so they cluster identically."""
    for e in seed_entries():
        assert e.signature.source_crc is not None  # prepare records what it signed
        blob = encode_entry(e)
        back = decode_entry(blob, "k", SETTINGS)
        for part in ("minhash", "term_ids", "term_weights", "shingles", "term_levels", "words"):
            got, want = getattr(back.signature, part), getattr(e.signature, part)
            assert got.dtype == want.dtype and np.array_equal(got, want), part
        assert back.signature.day == e.signature.day
        assert (back.id, back.title, back.text, back.sentence_hashes) == (e.id, e.title, e.text, e.sentence_hashes)
        assert record_id(blob, "k") == e.id
        # signing hands the codec the levels it quantized to; they are the ones the weights imply
        assert np.array_equal(e.signature.term_levels, weight_levels(e.signature.term_weights))
        [sig] = decode_signatures([blob], ["k"], SETTINGS)
        assert np.array_equal(sig.shingles, e.signature.shingles)


def test_a_prepared_article_is_stored_without_its_features_and_signed_again_on_reading():
    """The term vector and trigrams (~1.1 kB) are a function of the text the record keeps anyway."""
    e = seed_entries()[0]
    blob = encode_entry(e)
    _, flags, _, nm, nt, nsh, nh, *lengths = HEADER.unpack_from(blob)
    assert flags & DERIVED and nt == nsh == 0
    assert len(blob) == HEADER_SIZE + 4 * nm + 4 * nh + sum(lengths)
    full = encode_entry(dataclasses.replace(e, signature=dataclasses.replace(e.signature, source_crc=None)))
    # the words in text order ride along with the features: the template test reads them
    assert len(full) - len(blob) == 4 * len(e.signature.term_ids) + 3 * len(e.signature.shingles) \
        + 4 * len(e.signature.words)
    assert np.array_equal(decode_signature(full, "k", SETTINGS).words, e.signature.words)
    assert decode_signature(full, "k", SETTINGS).lead == decode_signature(blob, "k", SETTINGS).lead == e.signature.lead
    assert not blob.startswith(b"\x80")  # not a pickle


def test_a_signature_that_is_not_the_texts_own_is_stored_in_full():
    """Text changed after signing (or a signature made by hand): nothing could sign it again, so keep it all."""
    e = seed_entries()[1]
    edited = dataclasses.replace(e, text=e.text + " One more sentence.")
    blob = encode_entry(edited)
    assert not HEADER.unpack_from(blob)[1] & DERIVED
    back = decode_signature(blob, "k", SETTINGS)
    assert np.array_equal(back.term_ids, e.signature.term_ids) and np.array_equal(back.shingles, e.signature.shingles)


def test_reading_for_display_does_not_sign(monkeypatch):
    """The dashboard reads thousands of records for their text and titles; only .signature signs."""
    import dedup.index.redis.codec as codec

    e = seed_entries()[0]
    blob = encode_entry(e)
    calls = []
    real = codec.sign_articles
    monkeypatch.setattr(codec, "sign_articles", lambda *a: calls.append(1) or real(*a))
    back = decode_entry(blob, "k", SETTINGS)
    assert back.text == e.text and calls == []
    assert np.array_equal(back.signature.term_ids, e.signature.term_ids) and calls == [1]
    assert back.signature is back.signature and calls == [1]  # signed once


def test_a_record_signed_differently_is_refused_naming_the_key():
    """Another dedup version (normalization, signing) or other settings: the re-signed minhash differs."""
    e = seed_entries()[0]
    blob = bytearray(encode_entry(e))
    blob[HEADER_SIZE] ^= 0xFF  # the first minhash value
    with pytest.raises(CorruptRecord, match="k: field 'minhash' differs from the signature of the record's own text"):
        decode_signature(bytes(blob), "k", SETTINGS)
    with pytest.raises(CorruptRecord, match="field 'minhash'"):
        decode_signature(encode_entry(e), "k", Settings(seed=SETTINGS.seed + 1))


def test_weight_levels_invert_quantized_weights_and_reject_other_weights():
    levels = np.array([1, 7, 255, 200], dtype=np.uint8)
    w = quantized_weights(levels)
    assert abs(float(np.sum(w.astype(np.float64) ** 2)) - 1.0) < 1e-6
    assert np.array_equal(weight_levels(w), levels)
    assert weight_levels(np.array([0.6, 0.8], dtype=np.float32)) is None  # not from levels
    with pytest.raises(ValueError, match="heaviest word at 255"):
        quantized_weights([3, 100])


def _entry(**sig_parts) -> Entry:
    parts = dict(minhash=np.zeros(SETTINGS.num_perm, dtype=np.uint32), term_ids=np.array([1], dtype=np.uint32),
                 term_weights=quantized_weights([255]), shingles=np.array([2], dtype=np.uint32), day=None)
    parts.update(sig_parts)
    return Entry("a", "", "x", "", "", "", Signature(**parts), [])


def test_refuses_what_it_cannot_store_exactly():
    with pytest.raises(ValueError, match="not quantized"):
        encode_entry(_entry(term_weights=np.array([1.0], dtype=np.float64) * 0.9))
    with pytest.raises(ValueError, match="24-bit"):
        encode_entry(_entry(term_ids=np.array([1 << 24], dtype=np.uint32)))
    with pytest.raises(ValueError, match="24-bit"):
        encode_entry(_entry(shingles=np.array([1 << 30], dtype=np.uint32)))


def test_damaged_records_name_the_key_and_the_part():
    e = seed_entries()[0]
    sig = dataclasses.replace(e.signature, source_crc=None)  # stored in full: features to damage
    blob = encode_entry(dataclasses.replace(e, signature=sig))
    end = HEADER_SIZE + signature_size(len(sig.minhash), len(sig.term_ids), len(sig.shingles))
    with pytest.raises(CorruptRecord, match="k: field 'header'"):
        decode_signature(blob[:10], "k", SETTINGS)
    with pytest.raises(CorruptRecord, match="num_perm=64"):
        decode_signature(blob, "k", Settings(num_perm=64, bands=32, rows=2))
    with pytest.raises(CorruptRecord, match="field 'shingles'"):
        decode_signature(blob[:end - 1], "k", SETTINGS)


# A record as codec version 5 writes it (features kept, dated), pinned: records already stored in Redis must
# keep decoding, whatever builds the codec from its layout declaration.
STORED = bytes.fromhex(
    "0501204e0000200000000200000002000000020000000600000005000000020000000a0000000800000013000000000000000000"
    "00000000000041e2010082c40300c3a6050004890700456b0900864d0b00c72f0d0008120f0049f410008ad61200cbb814000c9b"
    "16004d7d18008e5f1a00cf411c0010241e005106200092e82100d3ca230014ad2500558f270096712900d7532b0018362d005918"
    "2f009afa3000dbdc32001cbf34005da136009e833800df653a00010000701101ff03050000ffffff07000000ffffffff77697265"
    "2f315469746c654150323032342d31302d3034687474703a2f2f78785e0b49ad2851c84f53c82cd1030017ba03c6"
)


def stored_entry() -> Entry:
    sig = Signature(minhash=np.arange(32, dtype=np.uint32) * 123457, term_ids=np.array([1, 70000], dtype=np.uint32),
                    term_weights=quantized_weights([255, 3]), shingles=np.array([5, 16777215], dtype=np.uint32),
                    day=20000)
    return Entry("wire/1", "Title", "Text of it.", "AP", "2024-10-04", "http://x", sig, [7, 4294967295])


def test_a_stored_record_decodes_and_encodes_to_the_same_bytes():
    want = stored_entry()
    back = decode_entry(STORED, "k", SETTINGS)
    assert (back.id, back.title, back.text, back.source, back.published, back.url, back.sentence_hashes) == \
        (want.id, want.title, want.text, want.source, want.published, want.url, want.sentence_hashes)
    for part in ("minhash", "term_ids", "term_weights", "shingles"):
        assert np.array_equal(getattr(back.signature, part), getattr(want.signature, part)), part
    assert back.signature.day == 20000 and record_id(STORED, "k") == "wire/1"
    assert encode_entry(want) == STORED and encode_entry(back) == STORED


def test_the_scripts_read_a_record_where_the_codec_wrote_each_part(redis_url):
    """The scripts' record constants (scripts.py prelude) come from the codec's layout declaration."""
    import redis

    from dedup.index.redis.scripts import SLOT

    seed = seed_entries()[0]
    undated = dataclasses.replace(seed, id="undated", signature=dataclasses.replace(seed.signature, day=None))
    entries = [stored_entry(), seed, undated,
               dataclasses.replace(seed, signature=dataclasses.replace(seed.signature, source_crc=None))]
    blobs = [STORED, encode_entry(seed), encode_entry(undated), encode_entry(entries[3])]
    assert blobs[1] != blobs[3] and len(set(blobs)) == 4  # features left out, and kept
    script = SLOT.HELPERS + """
local out = {}
for i = 4, #ARGV do
  local r = rec(ARGV[i])
  out[#out + 1] = {r.day or 'undated', rec_day(ARGV[i]) or 'undated', r.m, r.h, r.id}
end
return out
"""
    client = redis.Redis.from_url(redis_url)
    got = client.eval(script, 1, "{x}:meta", "x", 32, 1, *blobs)
    client.close()
    for e, (day, day_alone, minhash, sentences, aid) in zip(entries, got):
        want_day = b"undated" if e.signature.day is None else e.signature.day
        assert day == day_alone == want_day
        assert minhash == e.signature.minhash.astype("<u4").tobytes()
        assert sentences == np.asarray(e.sentence_hashes, dtype="<u4").tobytes()
        assert aid == e.id.encode()
