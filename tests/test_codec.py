"""The stored record: compact, pickle-free, and giving back bit-identical signatures."""

from __future__ import annotations

import numpy as np
import pytest

from dedup.index.codec import (HEADER_SIZE, CorruptRecord, decode_entry, decode_signature, encode_entry,
                               record_id, signature_size)
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
        blob = encode_entry(e)
        back = decode_entry(blob, "k", SETTINGS.num_perm)
        for part in ("minhash", "term_ids", "term_weights", "shingles"):
            got, want = getattr(back.signature, part), getattr(e.signature, part)
            assert got.dtype == want.dtype and np.array_equal(got, want), part
        assert back.signature.day == e.signature.day
        assert (back.id, back.title, back.text, back.sentence_hashes) == (e.id, e.title, e.text, e.sentence_hashes)
        assert record_id(blob, "k") == e.id
        # signing hands the codec the levels it quantized to; they are the ones the weights imply
        assert np.array_equal(e.signature.term_levels, weight_levels(e.signature.term_weights))
        assert np.array_equal(back.signature.term_levels, e.signature.term_levels)


def test_signature_part_costs_four_bytes_per_term_and_three_per_trigram():
    e = seed_entries()[0]
    sig = e.signature
    blob = encode_entry(e)
    size = signature_size(len(sig.minhash), len(sig.term_ids), len(sig.shingles))
    assert size == 4 * len(sig.minhash) + 4 * len(sig.term_ids) + 3 * len(sig.shingles)
    # the signature prefix alone decodes: the client can read it without the text
    assert np.array_equal(decode_signature(blob[:HEADER_SIZE + size], "k", SETTINGS.num_perm).term_weights,
                          sig.term_weights)
    assert not blob.startswith(b"\x80")  # not a pickle


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
    blob = encode_entry(e)
    sig = e.signature
    end = HEADER_SIZE + signature_size(len(sig.minhash), len(sig.term_ids), len(sig.shingles))
    with pytest.raises(CorruptRecord, match="k: field 'header'"):
        decode_signature(blob[:10], "k", SETTINGS.num_perm)
    with pytest.raises(CorruptRecord, match="num_perm=64"):
        decode_signature(blob, "k", 64)
    with pytest.raises(CorruptRecord, match="field 'shingles'"):
        decode_signature(blob[:end - 1], "k", SETTINGS.num_perm)
