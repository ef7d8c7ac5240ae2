"""Text normalization: what the matcher sees of an article.

Republished wire copy differs in ways that carry no information: curly
quotes, PA's ``#`` for the pound sign, datelines ("BRUSSELS (AP) —"),
bylines, and boilerplate glued on by the outlet (copyright notices, archive
warnings, photo credits, "Trending Stories").  Normalization removes these
so that neither clustering nor novelty ranking counts them.

Boilerplate is recognised by *shape* rather than by a list of outlets'
strings: short lines made of a notice's vocabulary (copyright, rights
reserved, archived, subscribe, photo credit...) are dropped.  Lines that
recur across unrelated stories are caught later, by the index's sentence
counts (see :mod:`dedup.novelty`), because that needs the whole corpus.

Normalization is idempotent: ``normalize(normalize(x)) == normalize(x)``.
"""

from __future__ import annotations

import html
import re
import unicodedata
import zlib
from itertools import compress

from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

_QUOTES = str.maketrans(
    {
        "\u2018": "'", "\u2019": "'", "\u201a": "'", "\u201b": "'", "\u2032": "'",
        "\u201c": '"', "\u201d": '"', "\u201e": '"', "\u201f": '"', "\u2033": '"',
        "\u00ab": '"', "\u00bb": '"', "`": "'",
        "\u2013": "-", "\u2014": "-", "\u2015": "-", "\u2212": "-",
        "\u00a0": " ", "\u200b": "", "\ufeff": "",
    }
)
_HTML_TAG = re.compile(r"<(script|style)\b.*?</\1\s*>|<[^>]{1,2000}>", re.S | re.I)
_LOOKS_HTML = re.compile(r"</?(p|div|span|br|a|b|i|em|strong|script|style|html|body|h[1-6]|li|ul|img)\b[^>]*>", re.I)
_BLOCK_TAG = re.compile(r"</?(p|div|br|li|h[1-6]|tr|blockquote)\b[^>]*>", re.I)
_PA_POUND = re.compile(r"#(?=\d)")
_SPACES = re.compile(r"[ \t\r\f\v]+")
_WHITESPACE = re.compile(r"\s+")

# "BRUSSELS (AP) - ", "LONDON, Jan 5 (Reuters) - ", "BRUSSELS (Reuters): ", "PARIS (AFP) - "
_DATELINE = re.compile(
    r"^[A-Z][A-Z .,'/-]{1,40}(?:,\s*[A-Z][a-z]{2,8}\.?\s+\d{1,2})?\s*"
    r"\((?:AP|AFP|Reuters|PA|dpa|UPI|Bloomberg|CNN|NHK)\)\s*[-:\u2013\u2014]+\s*",
)
_DATELINE_PLAIN = re.compile(r"^[A-Z][A-Z]{2,}(?: [A-Z]{2,}){0,2}\s+[-\u2013\u2014]\s+(?=[A-Z])")
BYLINE = re.compile(r"^(?:By\s+[A-Z][\w.'-]+(?:\s+[A-Z][\w.'-]+){0,3}(?:,\s*[\w .]+)?|\(reopens\)|\(?ends\)?|\(more\))\s*$", re.I)

# Vocabulary of notices an outlet glues on; a short line dense in it is boilerplate.
_NOTICE = re.compile(
    r"\b(copyright|\(c\)|©|all rights reserved|may not be (?:published|reproduced|redistributed)|"
    r"rewritten|redistributed|archived article|information in the article may be outdated|"
    r"time stamp on the story|trending stories|trending now|other reports by|read more|"
    r"related (?:stories|articles)|sign up|subscribe|newsletter|follow us|click here|"
    r"share this|advertisement|photo(?:graph)?s?:|photo by|\(ap photo|\(reuters/|getty images|"
    r"image caption|image copyright|media caption|file photo)\b",
    re.I,
)
_PHOTO_CREDIT = re.compile(r"\((?:AP|AFP|Reuters|NATO|dpa|EPA|Getty)[^)]{0,60}(?:Photo|/)[^)]{0,60}\)\s*$", re.I)


_TOKEN = re.compile(r"[a-z0-9£$€]+(?:[.,][0-9]+)*(?:'[a-z]+)?")
STOP_WORDS = frozenset(ENGLISH_STOP_WORDS) | {"said", "says", "told", "mr", "mrs", "ms", "year", "years"}


# A headline is at most this many words: longer first lines are ledes run on from a missing headline.
HEADLINE_WORDS = 14


def headline_line(clean: str) -> str:
    """The first line of a normalized text (:func:`normalize`) when it is shaped like a headline, else "".

    Shaped like one: another line follows, it is at most :data:`HEADLINE_WORDS`
    words, it does not end a sentence or open a list (no final "." or ":"), and
    the next line does not carry it on in lower case.
    """
    first, _, rest = clean.partition("\n")
    if (not rest or len(first.split()) > HEADLINE_WORDS or first.rstrip("\"')").endswith((".", ":"))
            or rest[:1].islower()):
        return ""
    return first


def looks_like_html(text: str) -> bool:
    # Every tag starts with "<": a memchr-speed test spares plain text the regex scan.
    return "<" in text and bool(_LOOKS_HTML.search(text))


def strip_html(text: str) -> str:
    """Turn an HTML body into plain text: block tags become paragraph breaks."""
    text = _BLOCK_TAG.sub("\n\n", text)
    text = _HTML_TAG.sub(" ", text)
    return html.unescape(text)


# The quote table as (character, replacement) pairs.  No replacement is itself a key, so replacing
# one key after another gives what a single ``str.translate`` would.
_QUOTE_PAIRS = tuple((chr(c), r) for c, r in _QUOTES.items())


def normalize_chars(text: str) -> str:
    """Unicode NFKC, straight quotes and dashes, PA's ``#`` before a figure as ``£``."""
    if not text.isascii():  # the translation table only maps non-ASCII characters (and the backtick)
        text = unicodedata.normalize("NFKC", text)
        # str.translate looks every character up in a dict, and even a regex scan for the set costs a few
        # ns a character; a membership test per table key runs at memchr speed (and returns at once for
        # a key wider than any character of the text), so replace only the keys that occur.
        for char, replacement in _QUOTE_PAIRS:
            if char in text:
                text = text.replace(char, replacement)
    elif "`" in text:
        text = text.replace("`", "'")
    if "''" in text:
        text = text.replace("''", '"')
    if "#" in text:
        text = _PA_POUND.sub("£", text)
    return text


# Cheap substrings one of which every notice contains; lines without any skip the regexes.
_NOTICE_HINTS = (
    "copyright", "(c)", "\u00a9", "rights", "publish", "reproduc", "rewritten", "redistribut", "archiv",
    "outdated", "stamp", "trending", "reports by", "read more", "related", "sign up", "subscri", "newsletter",
    "follow us", "click", "share this", "advert", "photo", "getty", "image", "caption", "/",
)


_ASCII_LOWER = bytes.maketrans(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ", b"abcdefghijklmnopqrstuvwxyz")


def _lower_for_hints(text: str) -> str:
    """``text`` with the hints' case dropped: ``str.lower`` as far as any hint can tell.

    The hints are ASCII (and "©"), so lowering the ASCII letters finds the same
    ones as ``str.lower``, at a table lookup per byte, and keeps every
    character where it was, unless the text holds one of the two characters
    that lower into ASCII (İ and the Kelvin sign).
    """
    if text.isascii() or "\u0130" in text or "\u212a" in text:
        return text.lower()
    return text.encode("utf-8", "surrogatepass").translate(_ASCII_LOWER).decode("utf-8", "surrogatepass")


def notice_hints(text: str) -> tuple[str, ...]:
    """The notice hints present anywhere in ``text``: lines need testing only for these."""
    low = _lower_for_hints(text)
    return tuple(compress(_NOTICE_HINTS, map(low.__contains__, _NOTICE_HINTS)))


def _lines_with_hints(low: str, hints: tuple[str, ...]) -> set[int]:
    """Numbers of the lines of ``low`` in which one of ``hints`` occurs."""
    found = set()
    for h in hints:
        line, counted = 0, 0  # line is the number of the line holding low[counted]
        i = low.find(h)
        while i >= 0:
            line += low.count("\n", counted, i)
            found.add(line)
            counted = low.find("\n", i)  # the rest of this line can add nothing
            i = low.find(h, counted) if counted >= 0 else -1
    return found


# ``re.I`` also lets these stand for "i" and "s", but ``str.lower`` keeps them: with one in a line,
# a notice can match without its hint showing in the lowered line.
_CASE_QUIRKS = ("\u0131", "\u0130", "\u017f")


def is_boilerplate_line(line: str, hints: tuple[str, ...] = _NOTICE_HINTS) -> bool:
    """A line that is a notice, a credit or a navigation label, not reporting."""
    return _is_boilerplate(line, hints, hints is _NOTICE_HINTS)


def _is_boilerplate(line: str, hints: tuple[str, ...], all_hints: bool) -> bool:
    """:func:`is_boilerplate_line`; ``all_hints``: every hint that occurs in ``line`` is in ``hints``."""
    low = line.lower()
    if not any(map(low.__contains__, hints)):  # plain substring tests: far cheaper than a regex here
        return False
    words = line.split()
    if not words:
        return False
    if "(" in line and _PHOTO_CREDIT.search(line) and len(words) < 80:
        return True
    # A notice is short, or dense in notice vocabulary.
    if len(words) <= 12:
        return _NOTICE.search(line) is not None
    # The regex costs a fraction of a microsecond per character, so first bound its count: each notice
    # holds a hint and notices do not overlap, so there are no more notices than hint occurrences
    # (unless the line has a character that re.I, but not str.lower, equates with "i" or "s").
    if line.isascii() or not any(c in line for c in _CASE_QUIRKS):
        if sum(low.count(h) for h in (hints if all_hints else _NOTICE_HINTS)) * 12 < len(words):
            return False
    return len(_NOTICE.findall(line)) * 12 >= len(words)


_CAPITALS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_CAPITALS_SET = frozenset(_CAPITALS)
# How a dateline can open: both patterns start with an ASCII capital, the plain one ("BRUSSELS - ")
# continues with two more, the agency one ("BRUSSELS (AP) - ") with a capital or one of " .,'/-".
# Most paragraphs ("The minister...") open otherwise and skip both regexes.
_DATELINE_OPENINGS = frozenset(a + b for a in _CAPITALS for b in _CAPITALS + " .,'/-")


def _may_start_dateline(par: str) -> bool:
    """Whether either dateline pattern could match at the start of ``par``."""
    # Past the opening, the agency pattern needs its "(AP)" and the plain one a third capital.
    return par[:2] in _DATELINE_OPENINGS and ("(" in par or par[2:3] in _CAPITALS_SET)


def strip_dateline(par: str) -> str:
    """Remove a leading dateline ("BRUSSELS (AP) - "), however many are stacked."""
    while True:
        if _may_start_dateline(par):
            stripped = _DATELINE_PLAIN.sub("", _DATELINE.sub("", par, count=1), count=1).strip()
        else:
            stripped = par.strip()
        if stripped == par:
            return par
        par = stripped


# Every character ``str.split()`` splits on except the space and the line break.
_ODD_SPACES = "\t\x0b\x0c\r\x1c\x1d\x1e\x1f\x85\xa0\u1680" + "".join(map(chr, range(0x2000, 0x200B))) + "\u2028\u2029\u202f\u205f\u3000"
_ODD_ASCII_SPACES = _ODD_SPACES[:8]


def _spaced_by_single_spaces(text: str) -> bool:
    """Whether the words of each line of ``text`` are separated by single spaces and nothing else.

    Then a line is its own ``" ".join(line.split())`` as soon as it neither
    starts nor ends with a space.  True for nearly all text, and far cheaper
    to establish once per text (substring tests run at memchr speed) than
    to split and rejoin every paragraph.
    """
    odd = _ODD_ASCII_SPACES if text.isascii() else _ODD_SPACES
    return not ("  " in text or any(c in text for c in odd))


# A byline or a wire marker ("(ends)") starts with one of these; other lines skip the regex.
_BYLINE_FIRST = frozenset("Bb(Ee")


def clean_paragraphs(text: str) -> tuple[list[str], list[str]]:
    """Split normalized text into kept paragraphs and removed boilerplate lines."""
    kept: list[str] = []
    dropped: list[str] = []
    low = _lower_for_hints(text)
    hints = tuple(compress(_NOTICE_HINTS, map(low.__contains__, _NOTICE_HINTS)))
    # Only a line holding a hint can be a notice.  A line whose spaces need collapsing is tested anyway
    # (collapsing can form a hint: "read  more"); any other paragraph is a tail of its line, so the
    # hints in it are among those of the line, and among ``hints``.
    hinted = _lines_with_hints(low, hints) if hints else ()
    single_spaced = _spaced_by_single_spaces(text)
    for n, raw in enumerate(text.split("\n")):
        if not raw:
            continue
        if single_spaced and raw[0] != " " and raw[-1] != " ":
            par = raw
            may_be_notice = n in hinted
        else:
            par = " ".join(raw.split())
            if not par:
                continue
            may_be_notice = bool(hints)
        # ``par`` has no space at either end, so only a dateline can change it here.
        if par[:2] in _DATELINE_OPENINGS:
            par = strip_dateline(par)
            if not par:
                continue
        if (may_be_notice and _is_boilerplate(par, hints, single_spaced)) or (
            len(par) < 80 and par[0] in _BYLINE_FIRST and BYLINE.match(par)
        ):
            dropped.append(par)
        else:
            kept.append(par)
    return kept, dropped


def normalize(text: str, title: str = "") -> tuple[str, list[str]]:
    """Normalize an article body (and title) for matching.

    Returns the clean text, one paragraph per line with the title first
    unless the body already starts with it, and the boilerplate lines removed.
    """
    for _ in range(5):  # entities can decode into more markup; bounded
        if not looks_like_html(text):
            break
        text = strip_html(text)
    text = normalize_chars(text)
    if title:
        title = _WHITESPACE.sub(" ", normalize_chars(strip_html(title) if looks_like_html(title) else title)).strip()
    paragraphs, dropped = clean_paragraphs(text)
    if title and not (paragraphs and paragraphs[0].casefold().startswith(title.casefold())):
        paragraphs.insert(0, title)
    return "\n".join(paragraphs), dropped


# A possible sentence end: one or more stops, any closing quotes or brackets (PA closes a quote with
# two apostrophes), spaces, then what can open a sentence: opening quotes or brackets (PA opens with
# two backticks) and a capital or a figure.  Whether it *is* an end depends on the word before the stop.
_BOUNDARY = re.compile(
    r"(?P<stop>[.!?]+)(?P<close>[\"'\u201d\u2019)\]]*)\s+(?=[`\"'\u201c\u2018(\[]*(?P<next>[A-Z0-9][\w'\u2019-]*))"
)
_OPENING_MARKS = "`\"'\u201c\u2018(["
_WORD_REACH = 24  # longer than any abbreviation listed below: a longer word is not one
# Titles stand before a name, so a stop after one never ends a sentence ("Mr. Smith", "Dr. No").
_TITLES = frozenset(
    "mr mrs ms messrs dr prof rev revd fr st gen col lt sgt capt cpl maj adm cmdr insp supt det "
    "rep sen gov pres hon rt sr jr mt ft".split()
)
# These stand before a figure ("No. 10", "Jan. 5", "Art. 3"); before a word they may end a sentence.
_BEFORE_FIGURES = frozenset("no nos art fig vol p pp para ch cl jan feb mar apr jun jul aug sep sept oct nov dec".split())
# Initials ("J. K. Rowling"), dotted acronyms ("U.S.", "a.m.") and company suffixes ("Acme Inc.") often go
# on with a capitalised word inside the sentence; they end it only when the next word is one that opens
# sentences and is rarely part of a name.
_NAME_PARTS = frozenset("inc ltd corp co bros plc llc etc".split())
_OPENERS = frozenset(
    "The A An He She It They We I You His Her Its Their Our My This That These Those There But And "
    "In On At After When While As If So Then".split()
)


def _ends_here(par: str, m: re.Match[str]) -> bool:
    """Whether the candidate boundary ``m`` in ``par`` ends a sentence (see the word lists above)."""
    if m["stop"] != "." or m["close"]:
        return True  # "?", "!", "..." or a closed quote: the writer ended the sentence
    # Only a short window before the stop is looked at, so each test costs the same on any paragraph.
    before = par[max(0, m.start() - _WORD_REACH) : m.start()].split()
    word = before[-1].lstrip(_OPENING_MARKS) if before else ""
    if not word:
        return True
    key = word.rstrip(".").casefold()
    if key in _TITLES:
        return False
    if key in _BEFORE_FIGURES and m["next"][0].isdigit():
        return False
    if key in _NAME_PARTS or (len(word) == 1 and word.isalpha()) or "." in word:
        return m["next"] in _OPENERS
    return True


def split_sentences(text: str) -> list[str]:
    """Split clean text (one paragraph per line) into sentences.

    A sentence ends at a stop followed by space and a capital or a figure,
    possibly through quotes on either side (``...night.'' He``, ``insulted.
    ``I``), unless the word before the stop is an abbreviation that goes
    on (``Mr.``, ``No. 10``, ``U.S. Army``).  A line never continues into
    the next.  Every piece is a stripped substring of its line, and the
    pieces hold all of its words in order.
    """
    out: list[str] = []
    for par in text.split("\n"):
        par = par.strip()
        if not par:
            continue
        start = 0
        for m in _BOUNDARY.finditer(par):
            if _ends_here(par, m):
                out.append(par[start : m.end("close")])
                start = m.end()
        out.append(par[start:])
    return out


# Stop words plus every one-character token: one set test per token instead of two tests.
NON_CONTENT = STOP_WORDS | frozenset("abcdefghijklmnopqrstuvwxyz0123456789£$€")


# Tokenization without the regex on the common path.  _TOKEN's alphabet is [a-z0-9£$€.,'] (after
# casefolding): every other character merely separates tokens.  So the text is cut into pieces at
# those characters, with one bytes.translate (a plain table lookup per byte) and str.split(); a regex
# match never spans a separator, so the regex finds in a piece exactly what it finds there in the
# whole text, and a piece of letters and digits alone is exactly one token.
#
# £ and € are the only non-ASCII characters of the alphabet: they travel through the ASCII bytes as
# two control characters, and every other non-ASCII character becomes a separator ("?" from
# encode(..., "replace")).  That skips casefolding non-ASCII text, which only matters for these
# characters, the only ones whose casefold holds an ASCII letter (checked by a test).
_FOLDS_TO_ASCII = "\u00df\u0130\u0149\u017f\u01f0\u1e96\u1e97\u1e98\u1e99\u1e9a\u1e9e\u212a\ufb00\ufb01\ufb02\ufb03\ufb04\ufb05\ufb06"
POUND_MARK, EURO_MARK = "\x01", "\x02"
_LOWERED_TOKEN_BYTES = bytes(
    b + 32 if 65 <= b <= 90
    else b if b >= 0x80 or chr(b) in "abcdefghijklmnopqrstuvwxyz0123456789$.,'" + POUND_MARK + EURO_MARK
    else 32
    for b in range(256)
)


def _tokens_slow(text: str) -> list[str]:
    return _TOKEN.findall(text.casefold())


# _TOKEN over text whose £ and € are the placeholders (the same class, with the placeholders for the two).
_TOKEN_PLACEHELD = re.compile(r"[a-z0-9\x01$\x02]+(?:[.,][0-9]+)*(?:'[a-z]+)?")


def _joined(words: list[str]) -> str:
    return " ".join(words).replace("£", POUND_MARK).replace("€", EURO_MARK)


def token_text(text: str) -> str:
    """The tokens of ``text`` as one ASCII string: separated by spaces, £ and € as ``\x01`` and ``\x02``.

    ``token_text(t).split()`` are exactly ``_TOKEN.findall(t.casefold())``
    with the two placeholders for £ and €.  Signing hashes this string's
    tokens with numpy (:mod:`dedup.signature`) without ever making a
    Python string per token; :func:`tokens` splits it.
    """
    if POUND_MARK in text or EURO_MARK in text:  # the placeholders are taken
        return _joined(_tokens_slow(text))
    if text.isascii():
        data = text.encode()
    elif any(c in text for c in _FOLDS_TO_ASCII):
        return _joined(_tokens_slow(text))
    else:
        data = text.replace("£", POUND_MARK).replace("€", EURO_MARK).encode("ascii", "replace")
    pieces = data.translate(_LOWERED_TOKEN_BYTES).decode()
    # ".", "," and "'" belong to a token only between two of its characters ("1.5", "1,000", "it's"):
    # never before a space, after one, or at either end.  Blank them there; that leaves few pieces
    # with punctuation, and only those go through the regex.
    if "." in pieces:
        pieces = pieces.replace(". ", "  ")
    if "," in pieces:
        pieces = pieces.replace(", ", "  ")
    if "'" in pieces:
        pieces = pieces.replace("' ", "  ").replace(" '", "  ")
    pieces = pieces.strip(" .,'")
    odd = sorted(i for c in "$.,'" if c in pieces for i in _find_all(pieces, c))
    if not odd:  # a piece of letters, digits and placeholders alone is exactly one token
        return pieces
    if len(odd) * 64 > len(pieces):  # mostly "it's" and "1,000": the regex over the whole text is cheaper
        return _joined(_tokens_slow(text))
    out: list[str] = []
    done = 0  # pieces[:done] is tokenized
    for i in odd:
        if i < done:
            continue  # in the piece just tokenized
        start = pieces.rfind(" ", 0, i) + 1
        end = pieces.find(" ", i)
        if end < 0:
            end = len(pieces)
        out.append(pieces[done:start])
        out.append(" ".join(_TOKEN_PLACEHELD.findall(pieces, start, end)))
        done = end
    out.append(pieces[done:])
    return "".join(out)


def tokens(text: str) -> list[str]:
    """Exactly ``_TOKEN.findall(text.casefold())``, several times faster on prose (see above)."""
    joined = token_text(text)
    if POUND_MARK in joined or EURO_MARK in joined:
        joined = joined.replace(POUND_MARK, "£").replace(EURO_MARK, "€")
    return joined.split()


def _find_all(text: str, char: str):
    i = text.find(char)
    while i >= 0:
        yield i
        i = text.find(char, i + 1)


def content_words(text: str) -> list[str]:
    """Tokens that carry meaning: no stop words, no single characters."""
    drop = NON_CONTENT
    return [t for t in tokens(text) if t not in drop]


def line_hash(line: str) -> int:
    """Identity of a normalized line (spaces collapsed) for counting recurrences, case ignored."""
    return zlib.crc32(line.casefold().encode("utf-8"))


def line_hashes(clean: str) -> list[int]:
    """Hashes of the lines (paragraphs) of a clean text, for the index's recurrence counts.

    ``[line_hash(p) for p in clean.split("\n") if p]``, casefolding and encoding the text once:
    no character casefolds into or out of a line break, so the lines are the same.
    """
    crc = zlib.crc32
    return [crc(p) for p in clean.casefold().encode("utf-8").split(b"\n") if p]


def display_sentences(text: str, title: str = "") -> list[tuple[str, str, int]]:
    """Sentences as they appear in the article, with their normalized form and line hash.

    Boilerplate lines are left out; HTML is reduced to text.  The normalized
    form is what matching uses, the first is what an editor is shown, and
    the hash of the sentence's line lets ranking skip lines that recur
    across unrelated stories.
    """
    for _ in range(5):
        if not looks_like_html(text):
            break
        text = strip_html(text)
    lines = [title] if title.strip() else []
    lines += text.split("\n")
    pars = []
    for n, raw in enumerate(lines):
        par = " ".join(raw.split())
        if par:
            norm = strip_dateline(" ".join(normalize_chars(par).split()))
            if norm:
                pars.append((n, par, norm))
    # One scan for the notice hints of all the lines; each line is then tested for those alone.
    hints = notice_hints("\n".join(norm for _, _, norm in pars))
    out: list[tuple[str, str, int]] = []
    first_norm = ""
    for n, par, norm in pars:
        if (hints and _is_boilerplate(norm, hints, True)) or (norm[0] in _BYLINE_FIRST and BYLINE.match(norm)):
            continue
        if n == 0 and title:
            first_norm = norm.casefold()
        elif first_norm and norm.casefold().startswith(first_norm) and len(norm) == len(first_norm):
            continue  # the body repeats the title
        h = line_hash(norm)
        for sentence in split_sentences(par):
            clean = strip_dateline(normalize_chars(sentence))
            if clean:
                out.append((sentence, clean, h))
    return out
