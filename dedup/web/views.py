"""The dashboard's core: plain functions the HTML pages and the JSON API both call.

Keeping one layer under both front ends means a page and its ``/api/...``
twin can never disagree about what a story contains.  Everything here works
through the :class:`~dedup.service.Deduper` API and ``StoryIndex``
primitives, so the same views run over the in-process and the Redis index.

Cost model (the list must stay fast at 10k stories): list rows are cheap
outlines (no TF-IDF), cached per story version; filters and search run over
cached per-story facts, re-read only for stories that changed.  Only the
story page ranks (TF-IDF), one story at a time.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import math
import re
import threading
import unicodedata
from dataclasses import asdict, dataclass, field, replace
from collections import OrderedDict
from typing import Any
from urllib.parse import quote, urlencode

from ..records import Article, Assignment, BadInput, Entry
from ..readers import article_from_json
from ..novelty import align_variants, outline_story, rank_story
from ..service import Deduper
from ..text import display_sentences

PER_PAGE = 20
MAX_PER_PAGE = 200
#: list orders an editor can choose, by their ``?sort=`` value
SORTS = {"activity": "latest activity", "size": "most articles", "first": "newest first seen"}
#: an editor looks for stories many outlets ran, so single-article stories are hidden unless asked for
MIN_SIZE = 2
#: News agencies whose copy other outlets run: a source is wire when its name is one of these or starts
#: with one followed by a space or punctuation ("PA", "PA Media", "Reuters UK", "AP/Berlin"), ignoring case.
#: Generic agency names only, so a feed's own outlets are never guessed at; pass ``wire_sources`` to
#: :class:`Dashboard` (``create_app``) for another list.
WIRE_SOURCES = (
    "AP", "Associated Press", "Reuters", "AFP", "Agence France-Presse", "PA", "PA Media", "Press Association",
    "dpa", "Deutsche Presse-Agentur", "ANSA", "EFE", "Kyodo", "Xinhua", "UPI", "United Press International",
    "AAP", "Australian Associated Press", "Canadian Press", "ANP", "APA", "Belga", "TASS", "Yonhap", "PTI",
    "Press Trust of India",
)


CHART_WIDTH, CHART_HEIGHT = 240, 44
#: chart buckets, smallest first: the first that needs at most CHART_BARS bars is used
CHART_UNITS = (("hour", 3600), ("6 hours", 6 * 3600), ("day", 86400), ("week", 7 * 86400),
               ("30 days", 30 * 86400), ("year", 365 * 86400))
CHART_BARS = 24


class NotFound(KeyError):
    """A story or article id that is not in the index; pages answer 404."""


def _path_id(kind: str, item_id: str) -> str:
    """``/kind/ID`` with the id as one quoted segment, or ``/kind?id=ID`` where a path cannot carry it.

    Ids are opaque: slashes, spaces and ``%`` are quoted (``/`` as ``%2F``,
    which the server decodes back).  An id that is a whole dot segment
    (``.``, ``..``) or empty would be rewritten by browsers, so it goes in
    the query instead.
    """
    if item_id in ("", ".", ".."):
        return f"/{kind}?" + urlencode({"id": item_id})
    return f"/{kind}/" + quote(item_id, safe="")


def is_wire(source: str, wire_sources: tuple[str, ...] = WIRE_SOURCES) -> bool:
    """Whether ``source`` names a news agency of ``wire_sources`` (see :data:`WIRE_SOURCES`)."""
    name = " ".join(source.split()).casefold()
    for wire in wire_sources:
        w = wire.casefold()
        if name == w or (name.startswith(w) and not name[len(w)].isalnum()):
            return True
    return False


# A credit line: "By John Deane, Chief Reporter, PA News", "From our correspondent in Paris".
_CREDIT = re.compile(r"^(?:by|from)\s+\S+", re.I)
_LOWER = re.compile(r"\b[a-z]{2,}")


def is_core_statement(sentence: str, headings: tuple[str, ...] = ()) -> bool:
    """Whether a sentence belongs in the shared core: reporting, not the headline (shown above it), a byline
    or credit, a dateline or a date, or a label in capitals."""
    text = " ".join(sentence.split())
    if not text or text.casefold() in {" ".join(h.split()).casefold() for h in headings if h}:
        return False
    words = text.split()
    if _CREDIT.match(text) and len(words) <= 12 and not text.endswith("."):
        return False
    return len(words) >= 4 and _LOWER.search(text) is not None


def story_url(story_id: str) -> str:
    return _path_id("story", story_id)


def article_url(article_id: str) -> str:
    return _path_id("article", article_id)


def compare_url(story_id: str, a: str = "", b: str = "") -> str:
    params = {"story": story_id, **({"a": a} if a else {}), **({"b": b} if b else {})}
    return "/compare?" + urlencode(params)


def similarity_url(story_id: str) -> str:
    return "/api/similarity?" + urlencode({"story": story_id})


def event_url(story_id: str, list_query: str = "") -> str:
    """The event page of a story; ``list_query`` names the list the page links back to."""
    return "/event?" + urlencode({"story": story_id}) + (f"&{list_query}" if list_query else "")


def _parse_day(value: str, name: str, problems: list[str]) -> str:
    """An ISO date (``YYYY-MM-DD``) as given, or "" with a message naming the input and the fix."""
    if not value:
        return ""
    try:
        return dt.date.fromisoformat(value).isoformat()
    except ValueError:
        problems.append(f"{name}={value!r} is not a date: write it as YYYY-MM-DD, e.g. 2024-03-07")
        return ""


def _ago(when: dt.datetime, now: dt.datetime) -> str:
    """Relative time an editor reads at a glance: "5 minutes ago", "3 days ago", "2 years ago"."""
    seconds = (now - when).total_seconds()
    future = seconds < 0
    text = _duration(abs(seconds))
    if text == "now":
        return "just now"
    return f"in {text}" if future else f"{text} ago"


def _duration(seconds: float) -> str:
    for unit, size in (("year", 365 * 86400), ("month", 30 * 86400), ("week", 7 * 86400), ("day", 86400),
                       ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            n = int(seconds // size)
            return f"{n} {unit}{'s' if n != 1 else ''}"
    return "now"


def _when(value: str) -> dt.datetime | None:
    try:
        got = dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    return got if got.tzinfo else got.replace(tzinfo=dt.timezone.utc)


def relative_span(first: str, last: str, now: dt.datetime | None = None) -> str:
    """A story's time span in relative time: how long it ran and how long ago its latest article came."""
    a, b = _when(first) if first else None, _when(last) if last else None
    if a is None or b is None:
        return "undated"
    now = now or dt.datetime.now(dt.timezone.utc)
    length = _duration((b - a).total_seconds())
    latest = _ago(b, now)
    return latest if length == "now" else f"over {length}, latest {latest}"


@dataclass
class Filters:
    """What the list page was asked for; empty fields mean "no filter"."""

    q: str = ""
    source: str = ""
    after: str = ""  # ISO date or datetime prefix, inclusive
    before: str = ""  # ISO date or datetime prefix, inclusive
    page: int = 1
    per_page: int = PER_PAGE
    sort: str = "activity"  # one of SORTS
    min_size: int = MIN_SIZE

    @property
    def active(self) -> bool:
        return bool(self.q.strip() or self.source.strip() or self.after.strip() or self.before.strip())

    @property
    def scans(self) -> bool:
        """Whether the list needs every story's facts (filters, a size floor or an order other than activity)."""
        return self.active or self.min_size > 1 or self.sort != "activity"

    def normalized(self) -> "Filters":
        return self.checked()[0]

    def checked(self) -> tuple["Filters", list[str]]:
        """These filters made valid, and a message per value that had to be dropped (naming it and the fix)."""
        problems: list[str] = []
        q = self.q.strip()
        if any(unicodedata.category(c) == "Cc" for c in q):
            problems.append(f"q={q!r} holds control characters: search for words only")
            q = ""
        sort = self.sort or "activity"
        if sort not in SORTS:
            problems.append(f"sort={sort!r} is not a list order: use one of {', '.join(SORTS)}")
            sort = "activity"
        after = _parse_day(self.after.strip(), "after", problems)
        before = _parse_day(self.before.strip(), "before", problems)
        if after and before and after > before:
            problems.append(f"after={after} is later than before={before}: swap the two dates")
            after = before = ""
        return Filters(
            q=q,
            source=self.source.strip(),
            after=after,
            before=before,
            page=max(1, int(self.page or 1)),
            per_page=min(MAX_PER_PAGE, max(1, int(self.per_page or PER_PAGE))),
            sort=sort,
            min_size=max(1, int(self.min_size or 1)),
        ), problems

    def query(self, page: int | None = None, **changes: Any) -> str:
        """The list URL's query string for these filters (defaults left out), with ``changes`` applied."""
        f = replace(self, **changes)
        page = f.page if page is None else page
        params = {k: v for k, v in (("q", f.q), ("source", f.source), ("after", f.after), ("before", f.before)) if v}
        if f.sort != "activity":
            params["sort"] = f.sort
        if f.min_size != MIN_SIZE:
            params["min_size"] = str(f.min_size)
        if page > 1:
            params["page"] = str(page)
        if f.per_page != PER_PAGE:
            params["per_page"] = str(f.per_page)
        return urlencode(params)


@dataclass
class StoryHeader:
    """What both the list row and the story page say about a story."""

    id: str
    headline: str
    size: int
    sources: list[str]
    first_published: str
    last_published: str


@dataclass
class StorySummary(StoryHeader):
    """One row of the story list."""

    most_complete: str
    url: str = ""
    source_count: int = 0
    span: str = ""  # relative time span, as of the request
    event: str = ""  # the event among the listed stories
    related: int = 0  # other listed stories of the same event
    event_url: str = ""
    wire: int = 0  # articles from a news agency (WIRE_SOURCES)
    other: int = 0  # articles from other outlets


@dataclass
class StoryPage:
    """One page of the list, plus the version the live poller compares against."""

    stories: list[StorySummary]
    page: int
    pages: int
    total: int
    version: str
    filters: Filters
    messages: list[str] = field(default_factory=list)
    hidden: int = 0  # stories under the size floor


@dataclass
class Segment:
    """A run of article text; ``unique`` runs are what this variant alone says."""

    text: str
    unique: bool = False


@dataclass
class VariantView:
    id: str
    rank: int
    title: str
    source: str
    published: str
    url: str
    unique_information: float
    coverage: float
    most_complete: bool
    unique_sentences: list[str]
    segments: list[Segment]
    words: int = 0
    url_page: str = ""  # the article's page on the dashboard
    similarity: float | None = 1.0  # share of its sentences and the most complete's that pair up (compare's
    # alignment); None while not computed yet


@dataclass
class Bar:
    """One time bucket of the coverage chart, in SVG user units."""

    start: str  # the bucket's first moment, as shown
    count: int
    x: float
    y: float
    width: float
    height: float


@dataclass
class Chart:
    """Articles per time bucket, drawn server-side as a small SVG; ``label`` says it in words."""

    bars: list[Bar]
    unit: str  # "hour", "6 hours", "day", ...
    first: str
    last: str
    label: str
    width: int = CHART_WIDTH
    height: int = CHART_HEIGHT


@dataclass
class StoryView(StoryHeader):
    """Everything the story page shows: ranked variants, shared core, arrival timeline."""

    variants: list[VariantView]
    core: list[str]  # most complete variant's sentences that other variants also carry
    timeline: list[dict[str, str]] = field(default_factory=list)
    chart: Chart | None = None  # None when no article is dated
    similarity_pending: bool = False  # the similarity column is asked for apart (Dashboard.similarity)


@dataclass
class SimilarityView:
    """Each variant's share of sentences shared with the most complete variant (empty for one article)."""

    story: str
    most_complete: str
    similarity: dict[str, float]


@dataclass
class DiffRow:
    """One row of a side-by-side comparison; ``kind`` is aligned, reworded, only-left or only-right."""

    kind: str
    a: str
    b: str
    similarity: float


@dataclass
class CompareView:
    story: str
    a: dict[str, str]
    b: dict[str, str]
    rows: list[DiffRow]
    similarity: float  # share of both variants' sentences that found a partner
    counts: dict[str, int] = field(default_factory=dict)


@dataclass
class EventStory:
    """One story of an event, with what it adds to the event's coverage."""

    id: str
    url: str
    headline: str
    size: int
    sources: list[str]
    span: str
    adds: list[str]  # unique sentences of its most complete variant that no other story of the event says
    first_published: str = ""
    last_published: str = ""
    articles: list[str] = field(default_factory=list)  # its article ids


@dataclass
class EventView:
    """Full coverage: the stories that report one news event, side by side."""

    id: str
    story: str  # the story the page was opened from
    stories: list[EventStory]
    candidates: int  # stories the event holds (the index keeps events whole: dedup.events)


#: what an export file can be
EXPORT_FORMATS = ("json", "csv")
STORY_CSV = ("story", "headline", "rank", "id", "title", "source", "wire", "published", "url", "words",
             "most_complete", "similarity", "unique_sentences", "text")
EVENT_CSV = ("event", "story", "headline", "size", "sources", "first_published", "last_published", "adds",
             "articles")


def story_export(s: StoryView, wire_sources: tuple[str, ...] = WIRE_SOURCES) -> dict[str, Any]:
    """A story as one JSON document: its header and every article with its text and what it adds."""
    texts = {v.id: "".join(seg.text for seg in v.segments) for v in s.variants}
    return {
        "story": s.id, "headline": s.headline, "size": s.size, "sources": s.sources,
        "first_published": s.first_published, "last_published": s.last_published,
        "articles": [{"rank": v.rank, "id": v.id, "title": v.title, "source": v.source,
                      "wire": is_wire(v.source, wire_sources), "published": v.published, "url": v.url,
                      "words": v.words, "most_complete": v.most_complete, "similarity": v.similarity,
                      "unique_sentences": v.unique_sentences, "text": texts[v.id]} for v in s.variants],
    }


def event_export(e: EventView) -> dict[str, Any]:
    """An event as one JSON document: its stories, each with what it adds and its article ids."""
    return {"event": e.id, "story": e.story, "candidates": e.candidates,
            "stories": [{"id": st.id, "headline": st.headline, "size": st.size, "sources": st.sources,
                         "first_published": st.first_published, "last_published": st.last_published,
                         "adds": st.adds, "articles": st.articles} for st in e.stories]}


def _cell(value: Any) -> str:
    """A CSV cell; lists one item a line.  A cell a spreadsheet would run as a formula (``=``, ``+``, ``-``,
    ``@``, tab, CR first) gets a leading ``'``, because feed text is untrusted."""
    if isinstance(value, list):
        value = "\n".join(str(v) for v in value)
    text = str(value).lower() if isinstance(value, bool) else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def to_csv(header: tuple[str, ...], rows: list[dict[str, Any]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow([_cell(row.get(k, "")) for k in header])
    return out.getvalue()


def story_csv(doc: dict[str, Any]) -> str:
    """:func:`story_export` as CSV, one row per article."""
    return to_csv(STORY_CSV, [{"story": doc["story"], "headline": doc["headline"], **a} for a in doc["articles"]])


def event_csv(doc: dict[str, Any]) -> str:
    """:func:`event_export` as CSV, one row per story."""
    return to_csv(EVENT_CSV, [{"event": doc["event"], "story": st["id"], **st} for st in doc["stories"]])


def to_json(obj: Any) -> Any:
    """Dataclass views as JSON-ready dicts (the API returns exactly what pages render)."""
    return asdict(obj)


def highlight(text: str, unique: list[str]) -> list[Segment]:
    """Split ``text`` into runs, marking each unique sentence where it occurs.

    Unique sentences are substrings of the article text (``display_sentences``
    keeps them verbatim), so a forward search finds them in order; one that
    cannot be found (e.g. it came from the title) is simply not marked.
    """
    segments: list[Segment] = []
    pos = 0
    for sentence in unique:
        if not sentence:
            continue
        at = text.find(sentence, pos)
        if at < 0:
            at = text.find(sentence)
            if at < pos:  # overlapping or earlier: already covered
                continue
        if at > pos:
            segments.append(Segment(text[pos:at]))
        segments.append(Segment(sentence, True))
        pos = at + len(sentence)
    if pos < len(text):
        segments.append(Segment(text[pos:]))
    return segments


def _shown_time(when: dt.datetime, unit: int) -> str:
    return when.strftime("%d %b %Y %H:%M" if unit < 86400 else "%d %b %Y")


def coverage_chart(published: list[str]) -> Chart | None:
    """Articles per time bucket over a story's span, the bucket size chosen so at most CHART_BARS bars show.

    Undated articles are left out of the bars and counted in the label.
    """
    times = sorted(t for t in (_when(p) for p in published if p) if t is not None)
    undated = len(published) - len(times)
    if not times:
        return None
    first, last = times[0], times[-1]
    origin = first.replace(minute=0, second=0, microsecond=0)
    # feeds that give dates only (every time midnight) are counted by day at the finest
    dates_only = all(t.hour == t.minute == t.second == 0 for t in times)
    units = [(n, u) for n, u in CHART_UNITS if u >= 86400 or not dates_only]
    name, unit = units[-1]
    for name, unit in units:
        if unit >= 86400:
            origin = first.replace(hour=0, minute=0, second=0, microsecond=0)
        if (last - origin).total_seconds() // unit + 1 <= CHART_BARS:
            break
    n = int((last - origin).total_seconds() // unit) + 1
    counts = [0] * n
    for t in times:
        counts[int((t - origin).total_seconds() // unit)] += 1
    top = max(counts)
    slot = CHART_WIDTH / n
    gap = min(2.0, slot / 4)
    bars = []
    for i, c in enumerate(counts):
        h = (CHART_HEIGHT - 2) * c / top if c else 0.0
        bars.append(Bar(_shown_time(origin + dt.timedelta(seconds=unit * i), unit), c, round(i * slot + gap / 2, 2),
                        round(CHART_HEIGHT - h, 2), round(slot - gap, 2), round(h, 2)))
    peak = max(bars, key=lambda b: b.count)
    words = (f"Coverage over time: {len(times)} dated article{'s' if len(times) != 1 else ''} "
             f"from {_shown_time(first, unit)} to {_shown_time(last, unit)}, {n} bar{'s' if n != 1 else ''} "
             f"of one {name} each; most in one {name}: {peak.count}, from {peak.start}")
    if undated:
        words += f"; {undated} undated article{'s' if undated != 1 else ''} not shown"
    return Chart(bars, name, _shown_time(first, unit), _shown_time(last, unit), words + ".")


def _day_key(published: str) -> str:
    return published[:10] if published else ""


@dataclass
class _Facts:
    """What the list's filters look at for one story, cached under the story's version."""

    version: int
    sources: frozenset[str]  # casefolded, for ?source=
    names: frozenset[str]  # as stored, for the filter menu
    first: str  # earliest publication ("" when undated)
    last: str
    text: str  # casefolded titles and texts, for ?q=
    size: int = 0


class Dashboard:
    """The deduper plus a lock and the list's caches.

    The lock is there because the in-process index is not thread-safe and
    the web server answers requests from a thread pool.

    Cost model (the list must stay fast at 10k stories in Redis): every
    index read is batched (a page costs a handful of round trips, not one
    per story), and everything derived from a story is cached under
    ``(story id, version)`` where the version is the index's change clock
    for that story (:meth:`~dedup.index.base.StoryIndex.story_versions`),
    so a cache entry can never be stale; a request only reads the stories
    that changed since the last one.  List rows are outlines
    (:func:`~dedup.novelty.outline_story`), never TF-IDF rankings.
    """

    #: outlines kept (LRU); a row is a few hundred bytes, so 20k is a few MB
    OUTLINE_CACHE = 20_000
    #: stories read per batch when (re)building filter facts
    CHUNK = 500
    #: list pages whose events are kept, and event pages (LRU): pages differ by filters and order
    EVENT_CACHE = 256
    #: stories whose variant similarities are kept (LRU)
    SIMILARITY_CACHE = 2_000

    def __init__(self, deduper: Deduper, wire_sources: tuple[str, ...] = WIRE_SOURCES) -> None:
        self.dd = deduper
        self.wire_sources = tuple(wire_sources)
        self.lock = threading.RLock()
        self._outlines: OrderedDict[tuple[str, int], StorySummary] = OrderedDict()
        self._facts: dict[str, _Facts] = {}
        self._sources: tuple[list[tuple[str, int]], list[str]] | None = None
        self._events: OrderedDict[tuple[tuple[str, int], ...], dict[str, str]] = OrderedDict()
        self._similarities: OrderedDict[tuple[Any, ...], dict[str, float]] = OrderedDict()
        self._event_views: OrderedDict[tuple[str, tuple[tuple[str, int], ...]], EventView] = OrderedDict()

    # -- list ---------------------------------------------------------------
    def _matches(self, facts: _Facts, f: Filters) -> bool:
        if facts.size < f.min_size:
            return False
        if f.source and f.source.casefold() not in facts.sources:
            return False
        if f.after or f.before:
            if not facts.last:
                return False
            if f.after and facts.last[:10] < f.after:
                return False
            if f.before and facts.first[:10] > f.before:
                return False
        if f.q and f.q.casefold() not in facts.text:
            return False
        return True

    def _refresh_facts(self, versions: list[tuple[str, int]]) -> dict[str, _Facts]:
        """Facts of these stories, reading from the index only those whose version moved."""
        dd = self.dd
        stale = [sid for sid, v in versions if (got := self._facts.get(sid)) is None or got.version != v]
        wanted = dict(versions)
        for i in range(0, len(stale), self.CHUNK):
            chunk = stale[i : i + self.CHUNK]
            members = dd.members_many(chunk)
            entries = dd.articles([a for sid in chunk for a in members.get(sid, ())])
            for sid in chunk:
                es = [entries[a] for a in members.get(sid, ()) if a in entries]
                if not es:
                    self._facts.pop(sid, None)
                    continue
                days = sorted(e.published for e in es if e.published)
                self._facts[sid] = _Facts(
                    version=wanted[sid],
                    sources=frozenset(e.source.casefold() for e in es if e.source),
                    names=frozenset(e.source for e in es if e.source),
                    first=days[0] if days else "",
                    last=days[-1] if days else "",
                    text="\0".join(f"{e.title}\0{e.text}" for e in es).casefold(),
                    size=len(es),
                )
        return {sid: self._facts[sid] for sid, _ in versions if sid in self._facts}

    def _scan(self, versions: list[tuple[str, int]], f: Filters) -> tuple[list[tuple[str, int]], int]:
        """Stories whose articles pass the filters, in the asked order, from the cached facts; and how many
        passed all but the size floor."""
        facts = self._refresh_facts(versions)
        if len(self._facts) > len(facts):  # forget deleted stories
            self._facts = {sid: self._facts[sid] for sid in facts}
        any_size = replace(f, min_size=1)
        passing = [(sid, v) for sid, v in versions if sid in facts and self._matches(facts[sid], any_size)]
        chosen = [(sid, v) for sid, v in passing if facts[sid].size >= f.min_size]
        if f.sort == "size":  # stable: equal sizes keep latest activity first
            chosen.sort(key=lambda sv: -facts[sv[0]].size)
        elif f.sort == "first":  # undated stories last
            chosen.sort(key=lambda sv: facts[sv[0]].first or "", reverse=True)
        return chosen, len(passing) - len(chosen)

    def _fingerprint(self, top: list[tuple[str, int]]) -> str:
        """A fingerprint of what the first list page shows.

        Stories come most recently changed first and each carries its
        change-clock version, so hashing the top ones with the index size
        catches arrivals, merges, replacements and deletions without a change
        log the index would have to keep.
        """
        h = hashlib.sha1(str(self.dd.article_count()).encode())
        for sid, v in top:
            h.update(f"|{sid}:{v}".encode())
        return h.hexdigest()[:16]

    def version(self) -> str:
        """The current list version (what ``?since=`` compares against): two cheap index reads."""
        with self.lock:
            return self._fingerprint(self.dd.story_versions(limit=PER_PAGE))

    def _rows(self, page: list[tuple[str, int]]) -> list[StorySummary]:
        """Outlines of a page of stories: cached ones free, the rest in three batched index reads."""
        dd = self.dd
        missing = [(sid, v) for sid, v in page if (sid, v) not in self._outlines]
        if missing:
            members = dd.members_many([sid for sid, _ in missing])
            entries = dd.articles([a for sid, _ in missing for a in members.get(sid, ())])
            hashes = sorted({h for e in entries.values() for h in e.sentence_hashes})
            counts = dict(zip(hashes, dd.sentence_counts(hashes)))
            for sid, v in missing:
                es = [entries[a] for a in members.get(sid, ()) if a in entries]
                if es:
                    o = outline_story(sid, es, self.dd.settings, counts)
                    wire = sum(1 for e in es if is_wire(e.source, self.wire_sources))
                    self._outlines[(sid, v)] = StorySummary(
                        o.id, o.headline, o.size, o.sources, o.first_published, o.last_published, o.most_complete,
                        wire=wire, other=len(es) - wire)
            while len(self._outlines) > self.OUTLINE_CACHE:
                self._outlines.popitem(last=False)
        rows = []
        for key in page:
            row = self._outlines.get(key)
            if row is not None:
                self._outlines.move_to_end(key)
                rows.append(row)
        return rows

    def list_stories(self, filters: Filters) -> StoryPage:
        """One page of stories in the asked order; rows are cached outlines, never rankings.

        Invalid filter values are dropped and a page past the end shows the
        last page; ``messages`` says which and why.
        """
        f, messages = filters.checked()
        with self.lock:
            versions = self.dd.story_versions()
            version = self._fingerprint(versions[:PER_PAGE])
            chosen, hidden = self._scan(versions, f) if f.scans else (versions, 0)
            total = len(chosen)
            pages = max(1, math.ceil(total / f.per_page))
            if f.page > pages:
                messages.append(f"page={f.page} is past the last page ({pages}): showing page {pages}")
                f = replace(f, page=pages)
            start = (f.page - 1) * f.per_page
            page = chosen[start : start + f.per_page]
            rows = self._rows(page)
            events = self._page_events(page)
        now = dt.datetime.now(dt.timezone.utc)
        by_event: dict[str, int] = {}
        for ev in events.values():
            by_event[ev] = by_event.get(ev, 0) + 1
        listed = f.query()
        rows = [replace(r, url=story_url(r.id), source_count=len(r.sources),
                        span=relative_span(r.first_published, r.last_published, now),
                        event=events.get(r.id, ""), related=by_event.get(events.get(r.id, ""), 1) - 1,
                        event_url=event_url(r.id, listed))
                for r in rows]
        return StoryPage(rows, f.page, pages, total, version, f, messages, hidden)

    def _page_events(self, page: list[tuple[str, int]]) -> dict[str, str]:
        """The event of each listed story, among the listed stories; kept while the page's versions hold."""
        key = tuple(page)
        if not page:
            return {}
        if key in self._events:
            self._events.move_to_end(key)
            return self._events[key]
        events = self._events[key] = self.dd.events([sid for sid, _ in page])
        while len(self._events) > self.EVENT_CACHE:
            self._events.popitem(last=False)
        return events

    def warm(self) -> int:
        """Read every story's filter facts ahead of the first search; returns how many stories.

        At 10k stories in Redis the first search or source filter would
        otherwise read all 100k articles inside one request.  The lock is
        taken per chunk, so requests are served between chunks while a
        server warms up in the background.
        """
        with self.lock:
            versions = self.dd.story_versions()
        for i in range(0, len(versions), self.CHUNK):
            with self.lock:
                self._refresh_facts(versions[i : i + self.CHUNK])
        with self.lock:  # forget stories deleted since the last full pass
            live = {sid for sid, _ in versions}
            self._facts = {sid: fact for sid, fact in self._facts.items() if sid in live}
        return len(versions)

    def sources(self, limit: int = 2000) -> list[str]:
        """Known sources for the filter menu, from the most recent ``limit`` stories.

        Every list page shows the menu, so the answer is kept until one of
        those stories changes (the full version list is cached by the index,
        so checking costs nothing extra on a list request).
        """
        with self.lock:
            top = self.dd.story_versions()[:limit]
            if self._sources is not None and self._sources[0] == top:
                return list(self._sources[1])
            facts = self._refresh_facts(top)
            seen: set[str] = set()
            for fact in facts.values():
                seen |= fact.names
            self._sources = (top, sorted(seen))
            return list(self._sources[1])

    # -- story --------------------------------------------------------------
    def _similarity(self, story_id: str, anchor: str, entries: dict[str, Entry],
                    compute: bool = True) -> dict[str, float] | None:
        """:meth:`Deduper.similarity_to` the most complete variant, kept while the story's texts are the same
        (one alignment per variant is the story page's largest cost); None when not kept and not ``compute``."""
        digest = hashlib.sha1()
        for e in sorted(entries.values(), key=lambda e: e.id):
            digest.update(f"{len(e.id)}:{e.id}{len(e.title)}:{e.title}{len(e.text)}:{e.text}".encode())
        key = (story_id, anchor, digest.hexdigest())
        got = self._similarities.get(key)
        if got is not None:
            self._similarities.move_to_end(key)
        elif compute:
            got = self._similarities[key] = self.dd.similarity_to(story_id, anchor)
            while len(self._similarities) > self.SIMILARITY_CACHE:
                self._similarities.popitem(last=False)
        return got

    def similarity(self, story_id: str) -> SimilarityView:
        """Each variant's sentences shared with the story's most complete variant (what the story page's
        column shows; the page asks for it apart when it is not kept yet, so the page itself stays fast)."""
        with self.lock:
            members = self.dd.members(story_id)
            if not members:
                raise NotFound(story_id)
            entries = self.dd.articles(members)
            hashes = sorted({h for e in entries.values() for h in e.sentence_hashes})
            counts = dict(zip(hashes, self.dd.sentence_counts(hashes)))
            best = outline_story(story_id, list(entries.values()), self.dd.settings, counts).most_complete
            got = self._similarity(story_id, best, entries) if len(entries) > 1 else {}
        return SimilarityView(story_id, best, {aid: got.get(aid, 1.0) for aid in sorted(entries)} if got else {})

    def story(self, story_id: str, similarity: bool = True) -> StoryView:
        """The story page's view; without ``similarity`` the similarity column is filled only when it is kept
        (``similarity_pending`` says it is not)."""
        with self.lock:
            st = self.dd.story(story_id)
            if st is None:
                raise NotFound(story_id)
            entries = self.dd.articles(v.id for v in st.articles)
            best_id = next((v.id for v in st.articles if v.most_complete), "")
            similar = (self._similarity(story_id, best_id, entries, compute=similarity)
                       if st.size > 1 and best_id else {})
        variants = []
        for v in st.articles:
            e = entries.get(v.id)
            text = e.text if e else ""
            variants.append(
                VariantView(
                    id=v.id, rank=v.rank, title=v.title, source=v.source, published=v.published,
                    url=e.url if e else "", unique_information=v.unique_information, coverage=v.coverage,
                    most_complete=v.most_complete, unique_sentences=list(v.unique_sentences),
                    segments=highlight(text, v.unique_sentences) if st.size > 1 else [Segment(text)],
                    words=len(text.split()), url_page=article_url(v.id),
                    similarity=None if similar is None else similar.get(v.id, 1.0),
                )
            )
        core: list[str] = []
        best = next((v for v in st.articles if v.most_complete), None)
        if best is not None and st.size > 1 and best.id in entries:
            e = entries[best.id]
            mine = set(best.unique_sentences)
            core = [shown for shown, _, _ in display_sentences(e.text, e.title)
                    if shown not in mine and is_core_statement(shown, (st.headline, e.title))]
        timeline = sorted(
            ({"id": e.id, "published": e.published, "source": e.source,
              "title": next((v.title for v in st.articles if v.id == e.id), e.title)} for e in entries.values()),
            key=lambda t: (t["published"] == "", t["published"], t["id"]),
        )
        return StoryView(st.id, st.headline, st.size, st.sources, st.first_published, st.last_published,
                         variants, core, timeline, coverage_chart([e.published for e in entries.values()]),
                         similar is None)

    def compare(self, story_id: str, a: str, b: str) -> CompareView:
        """Two variants side by side, aligned sentence by sentence with the ranking's TF-IDF similarity."""
        with self.lock:
            members = self.dd.members(story_id)
            if not members:
                raise NotFound(story_id)
            for aid in (a, b):
                if aid not in members:
                    raise NotFound(aid)
            entries = self.dd.articles(members)
            hashes = sorted({h for e in entries.values() for h in e.sentence_hashes})
            counts = dict(zip(hashes, self.dd.sentence_counts(hashes)))
        rows, ratio = align_variants(list(entries.values()), a, b, self.dd.settings, counts)
        kinds: dict[str, int] = {k: 0 for k in ("aligned", "reworded", "only-left", "only-right")}
        for r in rows:
            kinds[r.kind] += 1

        def head(e: Entry) -> dict[str, str]:
            return {"id": e.id, "title": e.title or (display_sentences(e.text)[:1] or [("", "", 0)])[0][0],
                    "source": e.source, "published": e.published, "url": article_url(e.id)}

        return CompareView(story_id, head(entries[a]), head(entries[b]),
                           [DiffRow(r.kind, r.left, r.right, r.similarity) for r in rows], ratio, kinds)

    # -- event --------------------------------------------------------------
    def event(self, story_id: str) -> EventView:
        """The stories of ``story_id``'s whole event (:meth:`~dedup.service.Deduper.event_of`), each with what
        it adds; kept while none of them changes.

        What a story adds is the unique sentences of its most complete
        variant that no other story of the event carries, judged by the
        ranking's sentence similarity over the event's most complete variants.
        """
        now = dt.datetime.now(dt.timezone.utc)
        with self.lock:
            event, ids = self.dd.event_of(story_id)
            if not ids:
                raise NotFound(story_id)
            known = dict(self.dd.story_versions())
            page = [(sid, known.get(sid, -1)) for sid in ids]
            key = (story_id, tuple(page))
            view = self._event_views.get(key)
            if view is None:
                view = self._event_views[key] = self._event(story_id, event, ids)
                while len(self._event_views) > self.EVENT_CACHE:
                    self._event_views.popitem(last=False)
            else:
                self._event_views.move_to_end(key)
        return replace(view, stories=[replace(st, span=relative_span(st.first_published, st.last_published, now))
                                      for st in view.stories])

    def _event(self, story_id: str, event: str, ids: list[str]) -> EventView:
        """:meth:`event` uncached: ``ids`` are the event's stories."""
        with self.lock:
            stories = [st for st in (self.dd.story(sid) for sid in ids) if st is not None]
            best = {st.id: next((v.id for v in st.articles if v.most_complete), st.articles[0].id) for st in stories}
            entries = self.dd.articles(best.values())
            hashes = sorted({h for e in entries.values() for h in e.sentence_hashes})
            counts = dict(zip(hashes, self.dd.sentence_counts(hashes)))
        adds: dict[str, list[str]] = {sid: [] for sid in best}
        if len(stories) > 1:
            # the event's stories compared as variants of one story: one most complete article each
            owner = {aid: sid for sid, aid in best.items()}
            ranked = rank_story(event, [entries[a] for a in best.values() if a in entries], self.dd.settings, counts)
            for v in ranked.articles:
                adds[owner[v.id]] = list(v.unique_sentences)
        stories.sort(key=lambda st: (-st.size, st.id))
        return EventView(event, story_id, [
            EventStory(st.id, story_url(st.id), st.headline, st.size, st.sources, "", adds.get(st.id, []),
                       st.first_published, st.last_published, [v.id for v in st.articles])
            for st in stories], len(ids))

    def story_of(self, article_id: str) -> str | None:
        """The story an article id belongs to, if it is stored."""
        with self.lock:
            return self.dd.story_of(article_id)

    # -- article ------------------------------------------------------------
    def article(self, article_id: str) -> dict[str, str]:
        with self.lock:
            e = self.dd.articles([article_id]).get(article_id)
            if e is None:
                raise NotFound(article_id)
            story = self.dd.story_of(article_id) or ""
        opening = (display_sentences(e.text)[:1] or [("", "", 0)])[0][0].split()
        heading = e.title or " ".join(opening[:14]) + (" \u2026" if len(opening) > 14 else "")
        return {"id": e.id, "title": e.title, "heading": heading or e.id, "text": e.text, "source": e.source,
                "published": e.published, "url": e.url, "story": story}

    # -- admin --------------------------------------------------------------
    def ingest(self, obj: Any) -> Assignment:
        """Cluster one JSON article (same fields as the CLI's JSONL); raises BadInput."""
        article: Article = article_from_json(obj, "request body")
        with self.lock:
            return self.dd.add(article)

    def delete(self, article_id: str) -> list[str]:
        with self.lock:
            try:
                return self.dd.delete(article_id)
            except KeyError as exc:
                raise NotFound(article_id) from exc


__all__ = ["Dashboard", "Filters", "NotFound", "BadInput", "highlight", "to_json", "PER_PAGE", "SORTS", "MIN_SIZE",
           "story_url", "article_url", "compare_url", "event_url", "similarity_url", "relative_span", "WIRE_SOURCES", "is_wire",
           "coverage_chart", "EXPORT_FORMATS", "story_export", "event_export", "story_csv", "event_csv"]
