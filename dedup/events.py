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

**Incremental.**  The index keeps the second level as it keeps the first:
as articles are stored, :func:`link_arrivals` records their keys
(``add_event_keys``), reads who else holds them (``key_holders``), decides the
candidate pairs with :func:`~dedup.evidence.event_links` and stores the true
ones (``add_event_links``).  The keys are recorded before they are read, so of
two writers storing at once at least one sees the other's article.  The event
of a story is read from the stored links (:func:`event_of`,
:func:`event_components`).  Three things keep the result the one
:func:`group_events`, the reference batch computation, gives on the same
articles, whatever their order:

* a stored link counts only while its two articles share a band, or share a
  word whose *current* holder count is at most :data:`MAX_KEY_ARTICLES`
  (checked when links are read): a word that became a beat's vocabulary
  stops proposing, as in the batch view;
* deletes that bring a word back to :data:`MAX_KEY_ARTICLES` holders or
  fewer decide every pair of its holders again (:func:`relink_after_delete`):
  they were not proposed while the word had more;
* a re-split that puts articles of one story into different stories decides
  every pair of them that shares a proposing key (:func:`relink_parts`):
  pairs in one story are never decided.

Deciding a pair again is harmless: a verdict depends on the two articles only.
Retention on the shared index runs :func:`relink_after_delete` once per pass,
after its deletes; a process stopped between the two leaves those pairs
undecided (unlike the re-splits it owes, which are recorded and finished later).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
import threading
from collections import OrderedDict, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np

from .clustering import within_window
from .evidence import TextFeatures, event_links, named_terms, text_features
from .records import Entry, Signature
from .settings import Settings
from .signature import band_hashes
from .text import normalize

if TYPE_CHECKING:  # the indexes call the stories module, which calls these functions; they only need an index's methods
    from .index.base import StoryIndex

KEY_TERMS = 10  # heaviest words of an article that propose event candidates
KEY_NAMES = 5  # rarest names of an article that propose event candidates
MAX_KEY_ARTICLES = 64  # a word held by more articles than this proposes none
OPENING = 400  # characters of a text searched for its date
FEATURE_CACHE = 4096  # articles whose text features are kept for deciding later pairs
BAND_KEY = b"b"  # stored key of a band: this, then the band's value bytes
WORD_KEY = b"w"  # stored key of a word or name: this, then its 4-byte id

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


def event_day(entry: Entry, signature: Signature | None = None) -> int | None:
    """The day the event window uses: ``published`` (the signature's day), else the date in the text's
    opening.  ``signature`` stands in for the entry's own when the caller has it at hand: an entry read
    back from a record stored without features signs its text again when its signature is first asked for."""
    day = (entry.signature if signature is None else signature).day
    if day is not None:
        return day
    return opening_day(entry.title + "\n" + entry.text)


def key_names(clean: str) -> tuple[int, ...]:
    """The term ids of the :data:`KEY_NAMES` rarest names of a normalized text
    (:func:`~dedup.evidence.named_terms`), rarest first."""
    names = named_terms(clean)
    return tuple(sorted(names, key=lambda w: (-names[w], w))[:KEY_NAMES])


def _keys(entry: Entry, names: Iterable[int], settings: Settings) -> set[tuple[str, int | bytes]]:
    """What proposes event candidates: LSH bands, the heaviest words, the rarest names (:func:`key_names`)."""
    keys: set[tuple[str, int | bytes]] = {("band", b) for b in band_hashes(entry.signature.minhash, settings.bands,
                                                                            settings.rows)}
    sig = entry.signature
    for k in np.argsort(-sig.term_weights.astype(np.float64), kind="stable")[:KEY_TERMS]:
        keys.add(("word", int(sig.term_ids[k])))
    keys.update(("word", w) for w in names)
    return keys


class _Components:
    """Stories joined into events (union-find), each event named after its smallest story id."""

    def __init__(self, stories: Iterable[str]) -> None:
        self._parent = {s: s for s in stories}

    def add(self, story: str) -> bool:
        """Take in a story as an event of its own; False if it is here already."""
        if story in self._parent:
            return False
        self._parent[story] = story
        return True

    def find(self, story: str) -> str:
        parent = self._parent
        while parent[story] != story:
            parent[story] = parent[parent[story]]
            story = parent[story]
        return story

    def join(self, a: str, b: str) -> None:
        x, y = self.find(a), self.find(b)
        if x != y:
            self._parent[max(x, y)] = min(x, y)

    def named(self) -> dict[str, str]:
        """The event of every story taken in."""
        return {s: self.find(s) for s in self._parent}


def group_events(entries: Sequence[Entry], story_of: Mapping[str, str], settings: Settings) -> dict[str, str]:
    """The event of each story that ``entries`` belong to (``story_of`` maps article -> story)."""
    entries = [e for e in entries if e.id in story_of]
    stories = sorted({story_of[e.id] for e in entries})
    events = _Components(stories)
    cleans = [normalize(e.text, e.title)[0] for e in entries]
    features = [text_features(c) for c in cleans]
    days = [event_day(e) for e in entries]
    by_key: dict[tuple[str, int | bytes], list[int]] = defaultdict(list)
    for i, (e, c) in enumerate(zip(entries, cleans)):
        for key in _keys(e, key_names(c), settings):
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
            events.join(story_of[entries[i].id], story_of[entries[j].id])
    return events.named()


# -- incremental: stored keys and links ---------------------------------------------

class _FeatureCache:
    """The text features of recently seen articles, by (article id, title, text), least recently
    used first out: the holders of a key are decided against again and again as articles arrive."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._items: OrderedDict[tuple[str, str, str], TextFeatures] = OrderedDict()
        self._lock = threading.Lock()

    def __call__(self, entry: Entry) -> TextFeatures:
        # by the text itself, not the signature's checksum: reading that would sign a stored record again
        key = (entry.id, entry.title, entry.text)
        with self._lock:
            found = self._items.get(key)
            if found is not None:
                self._items.move_to_end(key)
                return found
        features = text_features(normalize(entry.text, entry.title)[0])
        with self._lock:
            self._items[key] = features
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        return features


features_of = _FeatureCache(FEATURE_CACHE)


def encode_key(key: tuple[str, int | bytes]) -> bytes:
    """A key of :func:`_keys` as the index stores it."""
    kind, value = key
    if kind == "band":
        assert isinstance(value, bytes)
        return BAND_KEY + value
    assert isinstance(value, int)
    return WORD_KEY + value.to_bytes(4, "big")


def event_keys(entry: Entry, settings: Settings) -> list[bytes]:
    """The stored keys that propose an article's event candidates (see "Candidates" above), sorted."""
    names = entry.key_names if entry.key_names is not None else key_names(normalize(entry.text, entry.title)[0])
    return sorted(encode_key(k) for k in _keys(entry, names, settings))


def proposes(key: bytes, holders: int) -> bool:
    """Whether a key held by ``holders`` articles proposes pairs: a band always, a word while it is rare."""
    return key.startswith(BAND_KEY) or holders <= MAX_KEY_ARTICLES


def _pair(a: str, b: str) -> tuple[str, str]:
    return (a, b) if a < b else (b, a)


def decide(index: StoryIndex, pairs: Iterable[tuple[str, str]], settings: Settings,
           known: Mapping[str, Entry] | None = None) -> list[tuple[str, str]]:
    """The event links among candidate ``pairs``, decided in one batch: pairs of one story, of a dated and
    an undated article, or with an article no longer stored are skipped (as in :func:`group_events`).
    ``known`` holds entries the caller has at hand (the others are read)."""
    pairs = sorted({_pair(a, b) for a, b in pairs if a != b})
    if not pairs:
        return []
    ids = {a for p in pairs for a in p}
    story = index.story_of(ids)
    entries = {i: e for i, e in (known or {}).items() if i in story}
    sigs = {i: e.signature for i, e in entries.items()}
    # through the index, which keeps the signatures it read lately and signs the others in one batch
    sigs.update(index.signatures(story.keys() - sigs.keys()))
    # the text is read for the undated (their day is in it) and, below, for the pairs left to decide
    undated = {i for i, sig in sigs.items() if sig.day is None}
    entries.update(index.entries(undated - entries.keys()))
    for i in undated - entries.keys():  # deleted meanwhile
        del sigs[i]
    days: dict[str, int | None] = {}

    def day(i: str) -> int | None:
        if i not in days:
            days[i] = sigs[i].day if sigs[i].day is not None else event_day(entries[i], sigs[i])
        return days[i]

    todo = []
    for a, b in pairs:
        if a not in sigs or b not in sigs or story[a] == story[b]:
            continue
        if (day(a) is None) != (day(b) is None):  # one undated: no time evidence for an event
            continue
        if not within_window(day(a), day(b), settings.window_days):  # event_links' own test, before any reading
            continue
        todo.append((a, b))
    if not todo:
        return []
    needed = {x for p in todo for x in p}
    entries.update(index.entries(needed - entries.keys()))
    todo = [(a, b) for a, b in todo if a in entries and b in entries]  # deleted meanwhile
    dated = {i: dataclasses.replace(sigs[i], day=day(i)) for i in {x for p in todo for x in p}}
    linked = event_links([dated[a] for a, _ in todo], [dated[b] for _, b in todo],
                         _Features([entries[a] for a, _ in todo]), _Features([entries[b] for _, b in todo]), settings)
    return [p for p, ok in zip(todo, linked) if ok]


class _Features(Sequence[TextFeatures]):
    """The text features of a list of entries, computed when first asked for: the pair rules read them only for
    pairs whose cosine is close, and a holder outside the feature cache costs a normalization."""

    def __init__(self, entries: list[Entry]) -> None:
        self.entries = entries

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, k: int) -> TextFeatures:  # type: ignore[override]  # the pair rules index one pair at a time
        return features_of(self.entries[k])


def link_arrivals(index: StoryIndex, entries: Sequence[Entry], settings: Settings) -> list[tuple[str, str]]:
    """Record the event keys of newly stored articles (after their stories are assigned), decide the pairs
    their keys propose and store the links; returns the new links."""
    known = {e.id: e for e in entries}  # a later version of an id in the batch is the stored one
    if not known:
        return []
    keys = {i: event_keys(e, settings) for i, e in known.items()}
    index.add_event_keys(keys)  # before reading the holders: a concurrent writer then sees these
    holders = index.key_holders({k for ks in keys.values() for k in ks})
    proposed: dict[str, set[str]] = {}
    for i, ks in keys.items():
        found: set[str] = set()
        for k in ks:
            held = holders.get(k)
            if held and proposes(k, len(held)):
                found.update(held)
        found.discard(i)
        proposed[i] = found
    links = decide(index, _may_link(index, known, proposed, settings), settings, known)
    index.add_event_links(links)
    return links


def _may_link(index: StoryIndex, known: Mapping[str, Entry], proposed: Mapping[str, set[str]],
              settings: Settings) -> list[tuple[str, str]]:
    """The proposed pairs :func:`decide` may link: of two stories and, both dated, within the window (an
    undated article's day is in its text, which :func:`decide` reads).  Tested as arrays, one lookup per
    pair: a word proposes its holders over all time, so most pairs it proposes are far apart."""
    others = set().union(*proposed.values())
    story = index.story_of(others | known.keys())
    days = {i: e.signature.day for i, e in known.items()}
    days.update((i, sig.day) for i, sig in index.signatures(others - days.keys()).items())
    ids = [i for i in story if i in days]
    at = {i: n for n, i in enumerate(ids)}
    codes: dict[str, int] = {}
    story_code = np.array([codes.setdefault(story[i], len(codes)) for i in ids], dtype=np.int64)
    day = np.array([np.nan if days[i] is None else days[i] for i in ids], dtype=np.float64)
    out = []
    for i, found in proposed.items():
        me = at.get(i)
        if me is None or not found:
            continue
        them = np.array([at[o] for o in found if o in at], dtype=np.int64)
        far = np.abs(day[them] - day[me]) > settings.window_days  # False when either is undated (NaN)
        for o in them[(story_code[them] != story_code[me]) & ~far].tolist():
            out.append(_pair(i, ids[o]))
    return out


def relink_after_delete(index: StoryIndex, deleted: Iterable[Sequence[bytes]], settings: Settings
                        ) -> list[tuple[str, str]]:
    """After articles were deleted, given the keys each held: every word they held that is now back at
    :data:`MAX_KEY_ARTICLES` holders or fewer, having had more before, proposes again, so all pairs of its
    holders are decided (those already linked too: the verdict is the same).  Returns the links stored."""
    gone: dict[bytes, int] = defaultdict(int)
    for keys in deleted:
        for k in set(keys):
            if not k.startswith(BAND_KEY):
                gone[k] += 1
    pairs = {_pair(a, b) for k, held in index.key_holders(list(gone)).items()
             if len(held) <= MAX_KEY_ARTICLES < len(held) + gone[k]
             for n, a in enumerate(held) for b in held[n + 1:]}
    links = decide(index, pairs, settings)
    index.add_event_links(links)
    return links


def relink_parts(index: StoryIndex, ids: Sequence[str], settings: Settings) -> list[tuple[str, str]]:
    """After a re-split of the story that held ``ids``: decide every pair of them that shares a proposing
    key (pairs that are still in one story are skipped).  Returns the links stored."""
    keys = index.event_keys(ids)
    by_key: dict[bytes, list[str]] = defaultdict(list)
    for i, ks in keys.items():
        for k in ks:
            by_key[k].append(i)
    shared = {k: held for k, held in by_key.items() if len(held) > 1}
    counts = {k: len(v) for k, v in index.key_holders([k for k in shared if not k.startswith(BAND_KEY)]).items()}
    pairs = {_pair(a, b) for k, held in shared.items() if proposes(k, counts.get(k, 0))
             for n, a in enumerate(held) for b in held[n + 1:]}
    links = decide(index, pairs, settings)
    index.add_event_links(links)
    return links


def live_links(index: StoryIndex, ids: Iterable[str],
               ignore: frozenset[tuple[str, str]] = frozenset()) -> dict[str, list[str]]:
    """The stored links of ``ids`` that count now: their two articles share a band, or a word held by at most
    :data:`MAX_KEY_ARTICLES` articles.  Links in ``ignore`` (as (smaller, larger) id) are left out."""
    stored = index.event_links(ids)
    if ignore:
        stored = {a: [b for b in bs if _pair(a, b) not in ignore] for a, bs in stored.items()}
    if not any(stored.values()):
        return {}
    keys = {i: set(ks) for i, ks in index.event_keys(set(stored) | {b for bs in stored.values() for b in bs}).items()}
    shared = {(a, b): keys.get(a, set()) & keys.get(b, set()) for a, bs in stored.items() for b in bs}
    words = {k for common in shared.values() if not any(k.startswith(BAND_KEY) for k in common) for k in common}
    counts = {k: len(v) for k, v in index.key_holders(words).items()}
    out: dict[str, list[str]] = {}
    for (a, b), common in shared.items():
        if any(proposes(k, counts.get(k, 0)) for k in common):
            out.setdefault(a, []).append(b)
    return out


def event_components(index: StoryIndex, stories: Iterable[str], within: Iterable[str] | None = None,
                     ignore: frozenset[tuple[str, str]] = frozenset()) -> dict[str, str]:
    """The event (smallest story id of its component under the links that count) of each story reached from
    ``stories``: breadth first, members -> links -> stories of the linked articles, one batch of reads per
    level.  With ``within``, links to stories outside it are not followed; links in ``ignore`` are left
    out."""
    allowed = None if within is None else set(within)
    start = list(dict.fromkeys(stories))
    events = _Components(start)
    frontier = start
    while frontier:
        members = index.members_many(frontier)
        story_of = {a: sid for sid, ids in members.items() for a in ids}
        links = live_links(index, list(story_of), ignore)
        ends = index.story_of({b for bs in links.values() for b in bs})
        found = []
        for a, bs in links.items():
            for b in bs:
                other = ends.get(b)
                if other is None or (allowed is not None and other not in allowed):
                    continue
                if events.add(other):
                    found.append(other)
                events.join(story_of[a], other)
        frontier = found
    return events.named()


def event_of(index: StoryIndex, story: str) -> tuple[str, list[str]]:
    """The event of a story: its id (the smallest story id in it) and its stories, sorted; a story that
    holds no articles is ``(story, [])``."""
    if not index.members(story):
        return story, []
    reached = event_components(index, [story])
    event = reached[story]
    return event, sorted(s for s, e in reached.items() if e == event)


def arrival_events(index: StoryIndex, ids: Sequence[str], links: Sequence[tuple[str, str]]
                   ) -> dict[str, tuple[str, list[str]]]:
    """Per newly stored article: its event now, and the events its new ``links`` joined into it (the events,
    before these links, of its story and of the stories it was linked to, without the resulting one)."""
    story_of = index.story_of(set(ids) | {x for p in links for x in p})
    new = frozenset(_pair(a, b) for a, b in links)
    after = event_components(index, set(story_of.values()))
    before = event_components(index, set(story_of.values()), ignore=new) if new else after
    touched: dict[str, set[str]] = defaultdict(set)
    for a, b in new:
        for x, y in ((a, b), (b, a)):
            if y in story_of:
                touched[x].add(story_of[y])
    out = {}
    for i in ids:
        story = story_of.get(i)
        if story is None:  # deleted meanwhile
            continue
        event = after.get(story, story)
        joined = {before.get(s, s) for s in touched[i] | {story}}
        out[i] = (event, sorted(joined - {event}))
    return out


__all__ = ["group_events", "event_day", "opening_day", "event_keys", "encode_key", "proposes", "decide",
           "key_names", "link_arrivals", "relink_after_delete", "relink_parts", "live_links", "event_components",
           "event_of", "arrival_events", "features_of", "KEY_TERMS", "KEY_NAMES", "MAX_KEY_ARTICLES",
           "FEATURE_CACHE"]
