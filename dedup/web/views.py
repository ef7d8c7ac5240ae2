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

import difflib
import hashlib
import math
import threading
from dataclasses import asdict, dataclass, field
from collections import OrderedDict
from typing import Any

from ..records import Article, Assignment, BadInput, Entry
from ..readers import article_from_json
from ..novelty import outline_story
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
class StoryView(StoryHeader):
    """Everything the story page shows: ranked variants, shared core, arrival timeline."""

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


@dataclass
class _Facts:
    """What the list's filters look at for one story, cached under the story's version."""

    version: int
    sources: frozenset[str]  # casefolded, for ?source=
    names: frozenset[str]  # as stored, for the filter menu
    first: str  # earliest publication ("" when undated)
    last: str
    text: str  # casefolded titles and texts, for ?q=


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

    def __init__(self, deduper: Deduper) -> None:
        self.dd = deduper
        self.lock = threading.RLock()
        self._outlines: OrderedDict[tuple[str, int], StorySummary] = OrderedDict()
        self._facts: dict[str, _Facts] = {}
        self._sources: tuple[list[tuple[str, int]], list[str]] | None = None

    # -- list ---------------------------------------------------------------
    def _matches(self, facts: _Facts, f: Filters) -> bool:
        if f.source and f.source.casefold() not in facts.sources:
            return False
        if f.after or f.before:
            if not facts.last:
                return False
            if f.after and facts.last[: len(f.after)] < f.after:
                return False
            if f.before and facts.first[: len(f.before)] > f.before:
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
                )
        return {sid: self._facts[sid] for sid, _ in versions if sid in self._facts}

    def _scan(self, versions: list[tuple[str, int]], f: Filters) -> list[tuple[str, int]]:
        """Stories (in list order) whose articles pass the filters, from the cached facts."""
        facts = self._refresh_facts(versions)
        if len(self._facts) > len(facts):  # forget deleted stories
            self._facts = {sid: self._facts[sid] for sid in facts}
        return [(sid, v) for sid, v in versions if sid in facts and self._matches(facts[sid], f)]

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
                    self._outlines[(sid, v)] = StorySummary(
                        o.id, o.headline, o.size, o.sources, o.first_published, o.last_published, o.most_complete)
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
        """One page of stories, most recently active first; rows are cached outlines, never rankings."""
        f = filters.normalized()
        with self.lock:
            versions = self.dd.story_versions()
            version = self._fingerprint(versions[:PER_PAGE])
            chosen = self._scan(versions, f) if f.active else versions
            total = len(chosen)
            pages = max(1, math.ceil(total / f.per_page))
            start = (f.page - 1) * f.per_page
            rows = self._rows(chosen[start : start + f.per_page])
        return StoryPage(rows, f.page, pages, total, version, f)

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
    def story(self, story_id: str) -> StoryView:
        with self.lock:
            st = self.dd.story(story_id)
            if st is None:
                raise NotFound(story_id)
            entries = self.dd.articles(v.id for v in st.articles)
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
            members = set(self.dd.members(story_id))
            if not members:
                raise NotFound(story_id)
            for aid in (a, b):
                if aid not in members:
                    raise NotFound(aid)
            entries = self.dd.articles([a, b])
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
            e = self.dd.articles([article_id]).get(article_id)
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
