"""Normalization: what the matcher sees of an article."""

from hypothesis import given, settings, strategies as st

from dedup.text import (
    content_words, display_sentences, is_boilerplate_line, normalize, split_sentences, strip_dateline,
)


def test_pa_pound_sign_and_curly_quotes_are_normalized():
    clean, _ = normalize("He was fined #500 and said \u201cnever\u201d.")
    assert "£500" in clean and '"never"' in clean


def test_datelines_are_stripped():
    assert strip_dateline("BRUSSELS (AP) \u2014 NATO says").startswith("NATO")
    assert strip_dateline("BRUSSELS (Reuters): NATO's chief").startswith("NATO")
    assert strip_dateline("BRUSSELS - NATO defence ministers").startswith("NATO")


def test_boilerplate_lines_are_removed_but_reporting_is_kept():
    text = (
        "NATO chief seeks role\n\n"
        "This is an archived article and the information in the article may be outdated.\n\n"
        "Stoltenberg said the alliance must do more in Iraq.\n\n"
        "Copyright 2021 The Associated Press. All rights reserved.\n\nTrending Stories\n\nOther reports by iNewsToday"
    )
    clean, dropped = normalize(text)
    assert clean.splitlines() == ["NATO chief seeks role", "Stoltenberg said the alliance must do more in Iraq."]
    assert len(dropped) == 4


def test_a_long_paragraph_mentioning_copyright_is_not_boilerplate():
    par = ("The court heard that the band had sued over copyright in the song, claiming the melody "
           "was taken from a demo tape recorded in 1994 and played to the producer twice.")
    assert not is_boilerplate_line(par)


def test_html_is_reduced_to_text():
    clean, _ = normalize("<p>First &amp; <b>second</b></p><script>alert(1)</script><p>Third</p>")
    assert clean.splitlines() == ["First & second", "Third"]


def test_title_goes_first_unless_the_body_repeats_it():
    assert normalize("Body text here.", "Headline")[0].splitlines()[0] == "Headline"
    assert normalize("Headline\n\nBody text here.", "Headline")[0].count("Headline") == 1


def test_sentences_split_on_stops_but_not_on_abbreviations():
    assert split_sentences("Mr. Smith went home. He slept.") == ["Mr. Smith went home.", "He slept."]


def test_display_sentences_keep_the_article_wording():
    pairs = display_sentences("BRUSSELS (AP) \u2014 He said \u201cno\u201d. Then he left.")
    assert pairs[0][0].startswith("BRUSSELS (AP)")
    assert pairs[0][1].startswith('He said "no"')


def test_content_words_drop_stop_words():
    assert content_words("The minister said that the budget was cut") == ["minister", "budget", "cut"]


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("abcXYZ #12.,!?'\"\u2019\u201c\u201d\u2014-()<>/&;\n APReuters")), max_size=200),
       st.text(max_size=30))
def test_normalization_is_idempotent(text, title):
    once, _ = normalize(text, title)
    twice, _ = normalize(once, title)
    assert twice == once


# The fast paths of dedup.text are pinned to the plain regex / loop they replace.

import re  # noqa: E402
import sys  # noqa: E402

from dedup import text as T  # noqa: E402

_NASTY = list(
    "abcxyzABCXYZ0159 .,'$\u00a3\u20ac\u00a9#-/()<>&;:!?\"`\n\t\r\x0b\x0c\x1c\x85\u2028\u3000\u00a0"
    "\x01\x02\u00e9\u00c9\u0435\u4e2d\u0661\u00df\u0130\u0131\u017f\u212a\ufb01\u2019\u201c\u2014\ud800"
)
_NASTY_TEXT = st.text(alphabet=st.sampled_from(_NASTY), max_size=120) | st.text(max_size=60)


@settings(max_examples=500, deadline=None)
@given(_NASTY_TEXT)
def test_fast_tokenizer_matches_the_token_regex(text):
    assert T.tokens(text) == T._TOKEN.findall(text.casefold())


def test_fast_tokenizer_matches_the_token_regex_on_awkward_tokens():
    for text in [
        "It's the minister's U.S. $5 \u00a35bn \u20ac3.5m 1,000.50 2.5.6 'quoted' rock'n'roll 5,. .5 ,5 'tis \u00a3\u00a3 $$ end.",
        "Stra\u00dfe \ufb01nance \u0130stanbul \u212a caf\u00e9 \u041c\u043e\u0441\u043a\u0432\u0430 \x01\x02 x\u00a3y",
        "", " ", "'", ".", "a.", ".a", "a'b'c", "a..5", "5,,5", "x" * 5000,
    ]:
        assert T.tokens(text) == T._TOKEN.findall(text.casefold()), text


def test_only_the_listed_characters_casefold_into_the_token_alphabet():
    # tokens() skips casefolding non-ASCII text unless it holds one of _FOLDS_TO_ASCII.
    folding = {
        c for c in map(chr, range(0x80, sys.maxunicode + 1))
        if c.casefold() != c and any(f.isascii() or f in "\u00a3\u20ac" for f in c.casefold())
    }
    assert folding == set(T._FOLDS_TO_ASCII)
