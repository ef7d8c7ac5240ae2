"""Signatures: key-term MinHash, weighted word vector and trigram reuse."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dedup.settings import Settings
from dedup.signature import as_lean_minhash, band_hashes, cosine, cosines, idf, reuse, reuses, sign, sign_many
from dedup import text as T
from dedup.text import content_words

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


WORDS = ["blair", "firefighters", "downing", "street", "pay", "strike", "union", "minister", "talks", "fire",
         "brigades", "deal", "offer", "percent", "london", "army", "cover", "green", "goddess", "wage", "x", "7"]
texts = st.lists(st.sampled_from(WORDS), min_size=0, max_size=40).map(" ".join)


@settings(max_examples=40, deadline=None)
@given(st.lists(texts, min_size=1, max_size=12))
def test_a_batch_signs_each_article_as_it_would_be_signed_alone(batch):
    days = [7 if i % 2 else None for i in range(len(batch))]
    for text, day, got in zip(batch, days, sign_many(batch, days, S)):
        try:
            alone = sign(text, day, S)
        except ValueError:
            assert got is None
            continue
        assert got is not None and got.day == day
        for part in ("minhash", "term_ids", "term_weights", "shingles"):
            assert np.array_equal(getattr(got, part), getattr(alone, part)), part


def test_key_terms_are_the_heaviest_words_ties_broken_by_hash():
    """The MinHash covers the key_terms words with the largest (1 + log tf) x idf, as a plain sort picks them."""
    from dedup.signature import minhash_values, term_hash
    text = " ".join([A, B, A, "pay pay strike strike"])
    words = content_words(text)
    weight = {t: (1 + math.log(words.count(t))) * idf(t) for t in set(words)}
    key = sorted(weight, key=lambda t: (-weight[t], term_hash(t)))[: S.key_terms]
    expected = minhash_values(np.array([term_hash(t) for t in key], dtype=np.uint32), S.num_perm, S.seed)
    assert np.array_equal(sign(text, None, S).minhash, expected)


def test_batched_cosine_and_reuse_equal_the_pairwise_ones_in_both_directions():
    a, b, c = (sign(t, None, S) for t in (A, B, C))
    assert cosines(a, [b, c, a]) == [cosine(a, b), cosine(a, c), cosine(a, a)]
    assert reuses(a, [b, c]) == [reuse(a, b), reuse(a, c)]
    assert cosine(a, b) == cosine(b, a) and reuse(a, b) == reuse(b, a)


def test_signing_goes_on_after_the_word_table_fills_up(monkeypatch):
    from dedup import signature
    before = sign(A, None, S)
    fresh = signature._Lexicon(limit=5)
    monkeypatch.setattr(signature, "_LEX", fresh)
    for _ in range(3):
        again = sign(A, None, S)
        assert np.array_equal(again.minhash, before.minhash)
        assert np.array_equal(again.term_weights, before.term_weights)
    assert len(fresh) <= 5 + len(set(T.tokens(A)))


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="0123456789", min_size=1, max_size=14))
def test_fast_number_frequency_equals_wordfreq(digits):
    import wordfreq
    from dedup.signature import _zipf
    assert _zipf(digits) == wordfreq.zipf_frequency(digits, "en")


def test_fast_number_frequency_equals_wordfreq_on_years_and_amounts():
    import wordfreq
    from dedup.signature import _zipf
    for n in [*range(0, 3000), 10000, 250000, 1000000, 20190101]:
        for text in (str(n), "0" + str(n)):
            assert _zipf(text) == wordfreq.zipf_frequency(text, "en"), text


def test_every_token_of_a_batch_gets_the_facts_of_its_own_text():
    """Tokens are found by a hash of their bytes, never by a Python string: check the facts
    (CRC32 term id, idf, stop-word flag) against the token text, long tokens (BLAKE2b path) and £ included."""
    from dedup import signature as G
    text = "Cost £5bn, it's 1,000.5 U.S. dollars " + "x" * 70 + " " + "ab" * 40 + " the stoltenberg said"
    buf = T.token_text(text).encode("ascii")
    starts, ends, keys = G._token_spans(buf)
    words = T.tokens(text)
    assert len(words) == len(keys)
    rows = G._LEX.rows(buf, starts, ends, keys)
    for word, row in zip(words, rows.tolist()):
        assert G._LEX.crc[row] == G.term_hash(word)
        assert G._LEX.idf[row] == idf(word)
        assert G._LEX.content[row] == (word in content_words(word + " zzz"))
    # the same token hashes alike wherever it sits in a buffer
    again = G._token_spans(b"  " + buf + b" stoltenberg")[2]
    assert again[-1] == keys[words.index("stoltenberg")]
