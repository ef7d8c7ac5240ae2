"""The dashboard's core: plain functions the HTML pages and the JSON API both call.

Keeping one layer under both front ends means a page and its ``/api/...``
twin can never disagree about what a story contains.  Everything here works
through the :class:`~dedup.service.Deduper` API and ``StoryIndex``
primitives, so the same views run over the in-process and the Redis index.

Cost model (the list must stay fast at 10k stories): a page ranks only the
stories it shows; filters and search scan the stored entries, which is
cheap next to ranking (TF-IDF per story).
"""

from __future__ import annotations

import difflib
import hashlib
import math
import threading
from dataclasses import asdict, dataclass, field
from typing import Any, Iterator

from ..records import Article, Assignment, BadInput, Entry, Story
from ..readers import article_from_json
from ..service import Deduper
from ..text import display_sentences

PER_PAGE = 20
MAX_PER_PAGE = 200


class NotFound(KeyError):
    """A story or article id that is not in the index; pages answer 404."""


@dataclass
class Filters:
    """What the list page was asked for; empty fields mean "no filter"."""

    q: str = ""
    source: str = ""
    after: str = ""  # ISO date or datetime prefix, inclusive
    before: str = ""  # ISO date or datetime prefix, inclusive
    page: int = 1
    per_page: int = PER_PAGE

    @property
    def active(self) -> bool:
        return bool(self.q.strip() or self.source.strip() or self.after.strip() or self.before.strip())

    def normalized(self) -> "Filters":
        return Filters(
            q=self.q.strip(),
            source=self.source.strip(),
            after=self.after.strip(),
            before=self.before.strip(),
            page=max(1, int(self.page or 1)),
            per_page=min(MAX_PER_PAGE, max(1, int(self.per_page or PER_PAGE))),
        )


@dataclass
class StorySummary:
    """One row of the story list."""

    id: str
    headline: str
    size: int
    sources: list[str]
    first_published: str
    last_published: str
    most_complete: str


@dataclass
class StoryPage:
    """One page of the list, plus the version the live poller compares against."""

    stories: list[StorySummary]
    page: int
    pages: int
    total: int
    version: str
    filters: Filters


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


@dataclass
class StoryView:
    """Everything the story page shows: ranked variants, shared core, arrival timeline."""

    id: str
    headline: str
    size: int
    sources: list[str]
    first_published: str
    last_published: str
    variants: list[VariantView]
    core: list[str]  # most complete variant's sentences that other variants also carry
    timeline: list[dict[str, str]] = field(default_factory=list)


@dataclass
class DiffRow:
    """One aligned row of a side-by-side comparison; ``kind`` is difflib's opcode tag."""

    kind: str  # equal | replace | delete | insert
    a: list[str]
    b: list[str]


@dataclass
class CompareView:
    story: str
    a: dict[str, str]
    b: dict[str, str]
    rows: list[DiffRow]
    similarity: float


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


def _day_key(published: str) -> str:
    return published[:10] if published else ""


class Dashboard:
    """The deduper plus a lock: the in-process index is not thread-safe, and the
    web server answers requests from a thread pool."""

    def __init__(self, deduper: Deduper) -> None:
        self.dd = deduper
        self.lock = threading.RLock()

    # -- list ---------------------------------------------------------------
    def _matches(self, entries: list[Entry], f: Filters) -> bool:
        if f.source:
            want = f.source.casefold()
            if not any(e.source.casefold() == want for e in entries):
                return False
        if f.after or f.before:
            days = [e.published for e in entries if e.published]
            if not days:
                return False
            if f.after and max(days)[: len(f.after)] < f.after:
                return False
            if f.before and min(days)[: len(f.before)] > f.before:
                return False
        if f.q:
            needle = f.q.casefold()
            if not any(needle in e.title.casefold() or needle in e.text.casefold() for e in entries):
                return False
        return True

    def _scan(self, ids: list[str], f: Filters) -> Iterator[str]:
        """Story ids (in list order) whose articles pass the filters."""
        index = self.dd.index
        for sid in ids:
            members = index.members(sid)
            if members and self._matches(list(index.entries(members).values()), f):
                yield sid

    def version(self, top: list[str] | None = None) -> str:
        """A fingerprint of what the first list page shows.

        Story ids come most recently changed first, so a new or grown story
        moves to the top; hashing the top ids with their sizes and the index
        size catches arrivals, merges and deletions without a change log
        the index would have to keep.
        """
        index = self.dd.index
        if top is None:
            top = index.story_ids()[:PER_PAGE]
        h = hashlib.sha1(str(len(index)).encode())
        for sid in top:
            h.update(f"|{sid}:{len(index.members(sid))}".encode())
        return h.hexdigest()[:16]

    def list_stories(self, filters: Filters) -> StoryPage:
        """One page of stories, most recently active first; only that page is ranked."""
        f = filters.normalized()
        with self.lock:
            ids = self.dd.index.story_ids()
            version = self.version(ids[:PER_PAGE])
            chosen = list(self._scan(ids, f)) if f.active else ids
            total = len(chosen)
            pages = max(1, math.ceil(total / f.per_page))
            start = (f.page - 1) * f.per_page
            rows = []
            for sid in chosen[start : start + f.per_page]:
                st = self.dd.story(sid)
                if st is not None:
                    rows.append(self._summary(st))
        return StoryPage(rows, f.page, pages, total, version, f)

    @staticmethod
    def _summary(st: Story) -> StorySummary:
        best = next((v.id for v in st.articles if v.most_complete), st.articles[0].id if st.articles else "")
        return StorySummary(st.id, st.headline, st.size, st.sources, st.first_published, st.last_published, best)

    def sources(self, limit: int = 2000) -> list[str]:
        """Known sources for the filter menu, from the most recent ``limit`` stories (bounded cost)."""
        with self.lock:
            index = self.dd.index
            seen: set[str] = set()
            for sid in index.story_ids()[:limit]:
                seen.update(e.source for e in index.entries(index.members(sid)).values() if e.source)
        return sorted(seen)

    # -- story --------------------------------------------------------------
    def story(self, story_id: str) -> StoryView:
        with self.lock:
            st = self.dd.story(story_id)
            if st is None:
                raise NotFound(story_id)
            entries = self.dd.index.entries(v.id for v in st.articles)
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
                )
            )
        core: list[str] = []
        best = next((v for v in st.articles if v.most_complete), None)
        if best is not None and st.size > 1 and best.id in entries:
            e = entries[best.id]
            mine = set(best.unique_sentences)
            core = [shown for shown, _, _ in display_sentences(e.text, e.title) if shown not in mine]
        timeline = sorted(
            ({"id": e.id, "published": e.published, "source": e.source,
              "title": next((v.title for v in st.articles if v.id == e.id), e.title)} for e in entries.values()),
            key=lambda t: (t["published"] == "", t["published"], t["id"]),
        )
        return StoryView(st.id, st.headline, st.size, st.sources, st.first_published, st.last_published,
                         variants, core, timeline)

    def compare(self, story_id: str, a: str, b: str) -> CompareView:
        """Two variants side by side, aligned sentence by sentence with difflib."""
        with self.lock:
            members = set(self.dd.index.members(story_id))
            if not members:
                raise NotFound(story_id)
            for aid in (a, b):
                if aid not in members:
                    raise NotFound(aid)
            entries = self.dd.index.entries([a, b])
        ea, eb = entries[a], entries[b]
        sa = display_sentences(ea.text, ea.title)
        sb = display_sentences(eb.text, eb.title)
        # Match on the normalized form (quotes, spaces, datelines) so cosmetic edits are not "differences".
        matcher = difflib.SequenceMatcher(None, [n.casefold() for _, n, _ in sa], [n.casefold() for _, n, _ in sb],
                                          autojunk=False)
        rows = [
            DiffRow(tag, [s for s, _, _ in sa[i1:i2]], [s for s, _, _ in sb[j1:j2]])
            for tag, i1, i2, j1, j2 in matcher.get_opcodes()
        ]

        def head(e: Entry) -> dict[str, str]:
            return {"id": e.id, "title": e.title or (display_sentences(e.text)[:1] or [("", "", 0)])[0][0],
                    "source": e.source, "published": e.published}

        return CompareView(story_id, head(ea), head(eb), rows, round(matcher.ratio(), 3))

    # -- article ------------------------------------------------------------
    def article(self, article_id: str) -> dict[str, str]:
        with self.lock:
            e = self.dd.index.entries([article_id]).get(article_id)
            if e is None:
                raise NotFound(article_id)
            story = self.dd.story_of(article_id) or ""
        return {"id": e.id, "title": e.title, "text": e.text, "source": e.source,
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


__all__ = ["Dashboard", "Filters", "NotFound", "BadInput", "highlight", "to_json", "PER_PAGE"]
