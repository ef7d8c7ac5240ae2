"""Events: the stories that report one news event, grouped over stories that are already made.

A *story* holds the rewrites of one piece of copy (text reuse, decided as
articles arrive: :mod:`dedup.clustering`).  An *event* holds the stories that
report one news event without sharing text: independent wires, continuation
pages, follow-ups.  Two articles of different stories are event-linked by
:func:`dedup.evidence.event_links` (close word vectors *and* shared names or
figures, within the window); events are the connected components of stories
under those links, so stories always nest in events, and the grouping, like
the stories, does not depend on arrival order.  An event is named after the
smallest story id it holds.

**When an article happened.**  The window test needs a day.  An article's
day is its ``published`` day; a text without one (a file with no metadata)
is placed at the first full date in its opening lines, where wires print
their dateline.  An article with no day at all is event-linked only to
others without one: an event is bounded in time, and topical evidence alone
would join an undated report to every dated event on its subject (the same
people meet about the same matter year after year).

**Candidates.**  Pairs that share an LSH band (as for stories), one of their
:data:`KEY_TERMS` heaviest words, or one of their :data:`KEY_NAMES` rarest
names.  Independent reports share names and rare words where their
MinHash keys may not collide.  A word or name held by more than
:data:`MAX_KEY_ARTICLES` articles is a beat's vocabulary, not an event's: it
proposes no pairs (it would propose a quadratic number of them).

This is a batch view: :meth:`dedup.service.Deduper.events` computes it over
the stories an index holds.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from collections import defaultdict
from collections.abc import Mapping, Sequence

import numpy as np

from .evidence import TextFeatures, event_links, text_features
from .records import Entry
from .settings import Settings
from .signature import band_hashes
from .text import normalize

KEY_TERMS = 10  # heaviest words of an article that propose event candidates
KEY_NAMES = 5  # rarest names of an article that propose event candidates
MAX_KEY_ARTICLES = 64  # a word held by more articles than this proposes none
OPENING = 400  # characters of a text searched for its date

_MONTHS = {m: n for n, names in enumerate(
    [("jan", "january"), ("feb", "february"), ("mar", "march"), ("apr", "april"), ("may",), ("jun", "june"),
     ("jul", "july"), ("aug", "august"), ("sep", "sept", "september"), ("oct", "october"), ("nov", "november"),
     ("dec", "december")], start=1) for m in names}
_MONTH = r"(?P<{}>" + "|".join(sorted(_MONTHS, key=len, reverse=True)) + r")\.?"
_DATE = re.compile(
    r"\b(?:" + _MONTH.format("m1") + r"\s+(?P<d1>\d{1,2}),?\s+(?P<y1>(?:19|20)\d\d)"  # January 24, 2020
    r"|(?P<d2>\d{1,2})\s+" + _MONTH.format("m2") + r",?\s+(?P<y2>(?:19|20)\d\d)"  # 24 January 2020
    r"|(?P<d3>\d{1,2})/(?P<m3>\d{1,2})/(?P<y3>(?:19|20)\d\d)"  # 24/01/2020 (day first)
    r"|(?P<y4>(?:19|20)\d\d)-(?P<m4>\d\d)-(?P<d4>\d\d))\b",  # 2020-01-24
    re.IGNORECASE,
)


def opening_day(text: str) -> int | None:
    """The first full date in a text's opening, as a day ordinal; None when there is none.

    Numeric dates are read day first (24/01/2020) unless only month first
    makes a date (01/24/2020).
    """
    for m in _DATE.finditer(text[:OPENING]):
        g = m.groupdict()
        try:
            if g["y1"]:
                day = dt.date(int(g["y1"]), _MONTHS[g["m1"].lower()], int(g["d1"]))
            elif g["y2"]:
                day = dt.date(int(g["y2"]), _MONTHS[g["m2"].lower()], int(g["d2"]))
            elif g["y3"]:
                a, b, y = int(g["d3"]), int(g["m3"]), int(g["y3"])
                day = dt.date(y, b, a) if b <= 12 else dt.date(y, a, b)
            else:
                day = dt.date(int(g["y4"]), int(g["m4"]), int(g["d4"]))
        except ValueError:  # not a calendar date (31 February): look further
            continue
        return day.toordinal()
    return None


def event_day(entry: Entry) -> int | None:
    """The day the event window uses: ``published``, else the date in the text's opening."""
    if entry.signature.day is not None:
        return entry.signature.day
    return opening_day(entry.title + "\n" + entry.text)


def _keys(entry: Entry, features: TextFeatures, settings: Settings) -> set[tuple[str, int | bytes]]:
    """What proposes event candidates: LSH bands, the heaviest words, the rarest names."""
    keys: set[tuple[str, int | bytes]] = {("band", b) for b in band_hashes(entry.signature.minhash, settings.bands,
                                                                            settings.rows)}
    sig = entry.signature
    for k in np.argsort(-sig.term_weights.astype(np.float64), kind="stable")[:KEY_TERMS]:
        keys.add(("word", int(sig.term_ids[k])))
    if features.names.any():
        names = {int(w): float(x) for w, x, n in zip(features.words, features.weights, features.names) if n}
        for w in sorted(names, key=lambda w: (-names[w], w))[:KEY_NAMES]:
            keys.add(("word", w))
    return keys


def group_events(entries: Sequence[Entry], story_of: Mapping[str, str], settings: Settings) -> dict[str, str]:
    """The event of each story that ``entries`` belong to (``story_of`` maps article -> story)."""
    entries = [e for e in entries if e.id in story_of]
    stories = sorted({story_of[e.id] for e in entries})
    parent = {s: s for s in stories}

    def find(s: str) -> str:
        while parent[s] != s:
            parent[s] = parent[parent[s]]
            s = parent[s]
        return s

    features = [text_features(normalize(e.text, e.title)[0]) for e in entries]
    days = [event_day(e) for e in entries]
    by_key: dict[tuple[str, int | bytes], list[int]] = defaultdict(list)
    for i, (e, f) in enumerate(zip(entries, features)):
        for key in _keys(e, f, settings):
            by_key[key].append(i)
    pairs: set[tuple[int, int]] = set()
    for key, members in by_key.items():
        if len(members) < 2 or (key[0] == "word" and len(members) > MAX_KEY_ARTICLES):
            continue
        for x in range(len(members)):
            for y in range(x):
                i, j = members[y], members[x]
                if story_of[entries[i].id] == story_of[entries[j].id]:
                    continue
                if (days[i] is None) != (days[j] is None):  # one undated: no time evidence for an event
                    continue
                pairs.add((i, j))
    ordered = sorted(pairs)
    sigs = [dataclasses.replace(e.signature, day=d) for e, d in zip(entries, days)]
    linked = event_links([sigs[i] for i, _ in ordered], [sigs[j] for _, j in ordered],
                         [features[i] for i, _ in ordered], [features[j] for _, j in ordered], settings)
    for (i, j), ok in zip(ordered, linked):
        if ok:
            a, b = find(story_of[entries[i].id]), find(story_of[entries[j].id])
            if a != b:
                parent[max(a, b)] = min(a, b)
    return {s: find(s) for s in stories}


__all__ = ["group_events", "event_day", "opening_day", "KEY_TERMS", "KEY_NAMES", "MAX_KEY_ARTICLES"]
