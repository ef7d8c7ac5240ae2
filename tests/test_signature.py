"""Signatures: key-term MinHash, weighted word vector and trigram reuse."""

import numpy as np
import pytest

from dedup.settings import Settings
from dedup.signature import as_lean_minhash, band_hashes, cosine, idf, reuse, sign

S = Settings()
A = "Prime minister Tony Blair met striking firefighters in Downing Street on Tuesday over pay."
B = "Tony Blair met the striking firefighters at Downing Street yesterday to discuss their pay claim."
C = "The central bank raised interest rates by a quarter point as inflation in the eurozone climbed."


def test_rare_words_weigh_more_than_common_ones():
    assert idf("stoltenberg") > idf("minister") > idf("said")


def test_rewrites_are_closer_than_unrelated_articles():
    a, b, c = (sign(t, None, S) for t in (A, B, C))
    assert cosine(a, b) > 0.4 > cosine(a, c)
    assert reuse(a, b) > reuse(a, c) == 0.0
    assert cosine(a, a) == pytest.approx(1.0, abs=1e-5)


def test_signature_is_deterministic_and_compact():
    a1, a2 = sign(A, 5, S), sign(A, 5, S)
    assert np.array_equal(a1.minhash, a2.minhash) and a1.minhash.dtype == np.uint32
    assert len(a1.minhash) == S.num_perm
    assert np.all(np.diff(a1.term_ids.astype(np.int64)) > 0)
    assert np.all(np.diff(a1.shingles.astype(np.int64)) > 0)
    assert a1.day == 5


def test_minhash_reads_back_as_a_datasketch_lean_minhash():
    a, b = sign(A, None, S), sign(B, None, S)
    lean_a, lean_b = as_lean_minhash(a, S.seed), as_lean_minhash(b, S.seed)
    assert lean_a.jaccard(lean_a) == 1.0
    assert 0.0 < lean_a.jaccard(lean_b) < 1.0


def test_bands_cover_the_whole_signature():
    a = sign(A, None, S)
    keys = band_hashes(a.minhash, S.bands, S.rows)
    assert len(keys) == S.bands and b"".join(keys) == a.minhash.astype("<u4").tobytes()


def test_text_without_words_cannot_be_signed():
    with pytest.raises(ValueError, match="no words"):
        sign("the of and - !!", None, S)


def test_hand_written_minhash_equals_datasketch_update_batch():
    from dedup.signature import minhash_of, minhash_values, term_hash
    terms = ["blair", "firefighters", "downing", "strike", "pay"]
    ours = minhash_values(np.array([term_hash(t) for t in terms], dtype=np.uint32), 32, 1)
    assert np.array_equal(ours, minhash_of(terms, 32, 1))


def test_cosine_and_reuse_match_a_plain_set_computation():
    a, b = sign(A, None, S), sign(B, None, S)
    shared = set(a.term_ids.tolist()) & set(b.term_ids.tolist())
    wa = dict(zip(a.term_ids.tolist(), a.term_weights.tolist()))
    wb = dict(zip(b.term_ids.tolist(), b.term_weights.tolist()))
    assert cosine(a, b) == pytest.approx(sum(wa[t] * wb[t] for t in shared), rel=1e-5)
    sa, sb = set(a.shingles.tolist()), set(b.shingles.tolist())
    assert reuse(a, b) == pytest.approx(len(sa & sb) / min(len(sa), len(sb)))


def test_fast_word_frequency_equals_wordfreq():
    import wordfreq
    from dedup.signature import _zipf
    for w in ["the", "minister", "stoltenberg", "firefighters", "zzqxj", "£500", "1999", "o'neill"]:
        assert _zipf(w) == wordfreq.zipf_frequency(w, "en"), w
