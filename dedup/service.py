"""The one core every front end calls: the CLI, the worker and the dashboard.

Data flows one way: :class:`Article` -> normalized text -> :class:`Signature`
-> candidates -> story -> ranking.  Front ends parse their input into
:class:`Article` records, call a :class:`Deduper` method, and turn
:class:`~dedup.records.BadInput` into their own error format.
"""

from __future__ import annotations

import gc
import multiprocessing
import os
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Iterable, Iterator, TypeVar

import numpy as np

from .events import arrival_events, event_components, event_of, group_events, key_names, link_arrivals
from .index import MemoryIndex, StoryIndex, open_index
from .novelty import align_with, rank_story
from .records import Article, Assignment, BadInput, Entry, Signature, Story
from .settings import Settings
from .signature import idf, sign_articles
from .stories import assign, remove
from .text import line_hashes, normalize


@dataclass
class Outcome:
    """One item of a batch: its assignment, or the error that stopped it."""

    where: str
    article: Article | None
    assignment: Assignment | None = None
    error: BadInput | None = None
    # with Deduper.add_many(report_events=True): the article's event, and the events its event links joined
    # into it (dedup.events.arrival_events)
    event: str = ""
    event_merged: list[str] = field(default_factory=list)


_WORKER: "Deduper | None" = None
T = TypeVar("T")
CHUNK = 64  # articles signed together and assigned per index round trip


@contextmanager
def collector_paused() -> Iterator[None]:
    """Pause CPython's cyclic garbage collector for a batch, then restore it.

    A batch makes millions of long-lived objects (entries, signatures,
    bucket lists) and no reference cycles; the collector would still walk
    all of them again and again as they pile up.  Measured on the 100k
    synthetic corpus: ~50 us of the ~150 us an in-process ``put`` took.
    Reference counting frees everything as usual meanwhile.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _init_worker(settings: Settings) -> None:
    global _WORKER
    _WORKER = Deduper(settings, index=MemoryIndex(settings))  # only prepare() is used in workers


def _prepare_chunk_in_worker(items: list[Article | BadInput]) -> "_Packed":
    assert _WORKER is not None
    return _pack(_WORKER.prepare_many(items))


# What a worker process sends back for a chunk: per item its error, or its day, published string, sentence
# hashes, checksum and headline length; the chunk's signature arrays, concatenated, with each signature's
# lengths.  Pickling 64 entries with their small numpy arrays cost ~16 us per article on each side, a tenth
# of the main process's whole share; the article's own fields (id, title, text, ...) are already in the main
# process and are not sent back.  Every array signing makes travels, so an entry is the one signing in the
# main process would give (the template test reads ``words`` and ``lead``).
_Packed = tuple[list, np.ndarray, dict[str, np.ndarray], np.ndarray]
_RAGGED = ("term_ids", "term_weights", "term_levels", "shingles", "words")


def _pack(results: list[Entry | BadInput]) -> _Packed:
    sigs = [r.signature for r in results if isinstance(r, Entry)]
    meta = [r if isinstance(r, BadInput) else (r.signature.day, r.published, r.sentence_hashes,
                                               r.signature.source_crc, r.signature.lead, r.key_names)
            for r in results]
    if not sigs:
        return meta, np.empty(0, dtype=np.uint32), {}, np.empty((0, len(_RAGGED)), dtype=np.int64)
    ragged = {name: np.concatenate([getattr(g, name) for g in sigs]) for name in _RAGGED}
    lengths = np.array([[len(getattr(g, name)) for name in _RAGGED] for g in sigs], dtype=np.int64)
    return meta, np.stack([g.minhash for g in sigs]), ragged, lengths


def _unpack(packed: _Packed, items: list[Article | BadInput]) -> list[Entry | BadInput]:
    meta, minhash, ragged, lengths = packed
    starts = np.vstack([np.zeros((1, len(_RAGGED)), dtype=np.int64), np.cumsum(lengths, axis=0)]).tolist()
    out: list[Entry | BadInput] = []
    j = 0
    for item, m in zip(items, meta):
        if isinstance(m, BadInput):
            out.append(m)
            continue
        assert isinstance(item, Article)
        day, published, sentence_hashes, crc, lead, names = m
        parts = {name: ragged[name][starts[j][k] : starts[j + 1][k]] for k, name in enumerate(_RAGGED)}
        sig = Signature(minhash=minhash[j], day=day, source_crc=crc, lead=lead, **parts)
        out.append(Entry(id=str(item.id), title=item.title, text=item.text, source=item.source, published=published,
                         url=item.url, signature=sig, sentence_hashes=sentence_hashes, key_names=names))
        j += 1
    return out


def _chunks(items: Iterable[T], size: int) -> Iterator[list[T]]:
    chunk: list[T] = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


class Deduper:
    """Cluster articles into stories and rank each story's variants.

    ``Deduper()`` keeps its index in process; ``Deduper(url="redis://...")``
    shares one index with every other process using the same namespace.
    """

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        url: str | None = None,
        namespace: str = "dedup",
        index: StoryIndex | None = None,
    ) -> None:
        self.settings = settings or Settings()
        self.index = index if index is not None else open_index(self.settings, url, namespace)

    # -- ingest -----------------------------------------------------------
    def prepare(self, article: Article) -> Entry:
        """Normalize and sign an article; raises BadInput naming it when it cannot be clustered."""
        result = self.prepare_many([article])[0]
        if isinstance(result, BadInput):
            raise result
        return result

    def prepare_many(self, items: list[Article | BadInput]) -> list[Entry | BadInput]:
        """:meth:`prepare` for a batch: an Entry per good article, its BadInput in place otherwise.

        Signing runs once for the whole batch (:func:`dedup.signature.sign_articles`);
        each article's entry is the one :meth:`prepare` would give it alone.
        """
        out: list[Entry | BadInput] = []
        cleans: list[str] = []
        todo: list[tuple[int, Article]] = []
        for item in items:
            if isinstance(item, BadInput):
                out.append(item)
                continue
            try:
                cleans.append(self._clean(item))
            except BadInput as exc:
                out.append(exc)
                continue
            todo.append((len(out), item))
            out.append(item)  # type: ignore[arg-type]  # replaced below
        signatures = sign_articles([a.text for _, a in todo], [a.title for _, a in todo], [a.day for _, a in todo],
                                   self.settings, cleans=cleans)
        for (at, article), clean, signature in zip(todo, cleans, signatures):
            if signature is None:
                out[at] = BadInput(
                    article.origin or f"article {article.id!r}",
                    "empty text: no words to match on after normalization",
                    "send the article body in 'text' or 'body'",
                )
                continue
            out[at] = Entry(
                id=str(article.id),
                title=article.title,
                text=article.text,
                source=article.source,
                published=article.published.isoformat() if article.published else "",
                url=article.url,
                signature=signature,
                sentence_hashes=line_hashes(clean),
                key_names=key_names(clean) if self.settings.events else None,
            )
        return out

    def _clean(self, article: Article) -> str:
        """The normalized text of an article, after the checks that name what is wrong with it."""
        where = article.origin or f"article {article.id!r}"
        if not article.id or not str(article.id).strip():
            raise BadInput(where, "missing id", "give every article a non-empty 'id'")
        if len(article.text) > self.settings.max_chars:
            raise BadInput(
                where,
                f"text is {len(article.text):,} characters, over the limit of {self.settings.max_chars:,}",
                "split the article or raise --max-chars",
            )
        return normalize(article.text, article.title)[0]

    def add(self, article: Article) -> Assignment:
        """Put one article into its story (see :func:`dedup.stories.assign`), and, with
        ``settings.events``, store its event links (:func:`dedup.events.link_arrivals`)."""
        entry = self.prepare(article)
        assignment = assign(self.index, entry, self.settings)
        if self.settings.events and assignment.action != "unchanged":
            link_arrivals(self.index, [entry], self.settings)
        return assignment

    def add_many(self, items: Iterable[Article | BadInput], report_events: bool = False) -> Iterator[Outcome]:
        """Ingest a batch; a bad item yields an Outcome with its error and the batch goes on.

        With ``settings.jobs`` other than 1, normalization and signing (pure
        functions, most of the CPU time) run in worker processes while
        assignment stays here in arrival order, so the stories are the same.
        With ``settings.events``, the event links of each chunk's stored
        articles are decided and stored once the chunk's stories are
        assigned; ``report_events`` also fills each Outcome's ``event`` and
        ``event_merged`` (two reads of the events it touches per chunk).
        """
        with collector_paused():
            yield from self._add_many(items, report_events)

    def _add_many(self, items: Iterable[Article | BadInput], report_events: bool = False) -> Iterator[Outcome]:
        jobs = self.settings.jobs or os.cpu_count() or 1
        if jobs == 1:
            prepared = ((item, entry) for chunk in _chunks(items, CHUNK)
                        for item, entry in zip(chunk, self.prepare_many(chunk)))
            yield from self._assign_prepared(prepared, report_events=report_events)
            return
        idf("the")  # load the word-frequency table once, before forking, so workers share it
        ctx = multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods() else None)
        with ctx.Pool(jobs, initializer=_init_worker, initargs=(self.settings,)) as pool:
            chunks = list(_chunks(items, CHUNK))
            results = pool.imap(_prepare_chunk_in_worker, chunks)
            prepared = ((item, entry) for chunk, packed in zip(chunks, results)
                        for item, entry in zip(chunk, _unpack(packed, chunk)))
            yield from self._assign_prepared(prepared, report_events=report_events)

    def _assign_prepared(
        self, pairs: Iterable[tuple[Article | BadInput, Entry | BadInput]], chunk: int | None = None,
        report_events: bool = False,
    ) -> Iterator[Outcome]:
        """Assign prepared entries in input order through the index's batch path, ``index.ingest_batch``
        entries per call.

        On Redis that is one round trip per chunk of 64 instead of two per article.

        ``ingest_many`` decides in input order, so the assignments, including
        which article founded which story, are the ones ``assign`` would give
        one article at a time; stored ids still go through ``assign``
        (unchanged / replaced).
        """
        def one(entry: Entry) -> Assignment:
            return assign(self.index, entry, self.settings)

        buffer: list[tuple[Article | BadInput, Entry | BadInput]] = []
        chunk = chunk or self.index.ingest_batch

        def flush() -> Iterator[Outcome]:
            entries = [p for _, p in buffer if isinstance(p, Entry)]
            done = self.index.ingest_many(entries, fallback=one)
            events = self._link(entries, done, report_events)
            results = iter(done)
            for item, prepared in buffer:
                if isinstance(item, BadInput):
                    yield Outcome(item.where, None, error=item)
                    continue
                where = item.origin or item.id
                if isinstance(prepared, BadInput):
                    yield Outcome(where, item, error=prepared)
                    continue
                result = next(results)
                if isinstance(result, BadInput):
                    yield Outcome(where, item, error=result)
                elif isinstance(result, Exception):
                    raise result
                else:
                    event, merged = events.get(result.article_id, ("", []))
                    yield Outcome(where, item, assignment=result, event=event, event_merged=merged)
            buffer.clear()

        for pair in pairs:
            buffer.append(pair)
            if len(buffer) >= chunk:
                yield from flush()
        yield from flush()

    def _link(self, entries: list[Entry], results: list[Assignment | Exception], report: bool
              ) -> dict[str, tuple[str, list[str]]]:
        """The event step of one ingested chunk: link the articles that were stored (not the unchanged ones);
        with ``report``, each assigned article's event and the events it joined into it."""
        if not self.settings.events:
            return {}
        stored = [e for e, r in zip(entries, results) if isinstance(r, Assignment) and r.action != "unchanged"]
        links = link_arrivals(self.index, stored, self.settings)
        if not report:
            return {}
        ids = [r.article_id for r in results if isinstance(r, Assignment)]
        return arrival_events(self.index, ids, links)

    def delete(self, article_id: str) -> list[str]:
        """Remove an article everywhere; returns the stories its old story became."""
        entry, stories = remove(self.index, article_id, self.settings)
        if entry is None:
            raise KeyError(article_id)
        return stories

    # -- read -------------------------------------------------------------
    def story_of(self, article_id: str) -> str | None:
        return self.index.story_of([article_id]).get(article_id)

    def stories_of(self, article_ids: Iterable[str]) -> dict[str, str]:
        """The story of each stored id (ids not stored are left out)."""
        return self.index.story_of(article_ids)

    def members(self, story_id: str) -> list[str]:
        """Article ids of a story (empty when unknown)."""
        return self.index.members(story_id)

    def members_many(self, story_ids: Iterable[str]) -> dict[str, list[str]]:
        """Article ids of several stories in one read (unknown stories left out)."""
        return self.index.members_many(story_ids)

    def articles(self, article_ids: Iterable[str]) -> dict[str, Entry]:
        """Stored articles by id (ids not stored are left out)."""
        return self.index.entries(article_ids)

    def sentence_counts(self, hashes: Iterable[int]) -> list[int]:
        """How many stored articles hold each sentence hash: the boilerplate evidence ranking uses."""
        return self.index.sentence_counts(hashes)

    def story_versions(self, limit: int | None = None) -> list[tuple[str, int]]:
        """``(story id, version)``, most recently changed first: a version changes with every change of
        the story, so anything derived from a story can be cached under it."""
        return self.index.story_versions(limit)

    def article_count(self) -> int:
        """How many articles the index holds (no ``__len__``: an empty Deduper must not be falsy)."""
        return len(self.index)

    def story(self, story_id: str) -> Story | None:
        """A story with its variants ranked by unique information, or None."""
        ids = self.index.members(story_id)
        if not ids:
            return None
        entries = list(self.index.entries(ids).values())
        hashes = sorted({h for e in entries for h in e.sentence_hashes})
        counts = dict(zip(hashes, self.index.sentence_counts(hashes)))
        return rank_story(story_id, entries, self.settings, counts)

    def similarity_to(self, story_id: str, anchor: str) -> dict[str, float]:
        """Per variant of a story, how much it says what its variant ``anchor`` says: the share of the two
        variants' sentences that pair up under the ranking's TF-IDF similarity
        (:func:`~dedup.novelty.align_variants`, as on the compare page); 1.0 for ``anchor`` itself.  Empty
        when ``anchor`` is not in the story.  The story's TF-IDF model is fitted once for all of them."""
        ids = self.index.members(story_id)
        if anchor not in ids:
            return {}
        entries = list(self.index.entries(ids).values())
        hashes = sorted({h for e in entries for h in e.sentence_hashes})
        counts = dict(zip(hashes, self.index.sentence_counts(hashes)))
        others = [e.id for e in entries if e.id != anchor]
        aligned = align_with(entries, anchor, others, self.settings, counts)
        return {e.id: 1.0 if e.id == anchor else aligned[e.id][1] for e in entries}

    def stories(self, limit: int | None = None, offset: int = 0) -> list[Story]:
        ids = self.index.story_ids()
        ids = ids[offset : None if limit is None else offset + limit]
        return [s for s in (self.story(i) for i in ids) if s is not None]

    def close(self) -> None:
        self.index.close()

    def __enter__(self) -> "Deduper":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def events(self, story_ids: Iterable[str] | None = None) -> dict[str, str]:
        """The event of each story (story id -> event id): the stories that report one news event,
        grouped by topical evidence (:mod:`dedup.events`), among ``story_ids`` (default: every story the
        index holds): links to other stories are not followed.  Read from the stored event links; with
        ``settings.events`` off, computed over all the stories' articles instead
        (:func:`dedup.events.group_events`).  Every story asked for has an event."""
        story_ids = self.index.story_ids() if story_ids is None else list(dict.fromkeys(story_ids))
        if self.settings.events:
            grouped = event_components(self.index, story_ids, within=story_ids)
        else:
            members = self.index.members_many(story_ids)
            story_of = {a: sid for sid, ids in members.items() for a in ids}
            entries = self.index.entries(list(story_of))
            grouped = group_events([entries[a] for a in sorted(entries)], story_of, self.settings)
        # a story another writer emptied meanwhile is its own event
        return {sid: grouped.get(sid, sid) for sid in story_ids}

    def event_of(self, story_id: str) -> tuple[str, list[str]]:
        """The whole event of a story: its id (the smallest story id in it) and its story ids, sorted
        (``(story_id, [])`` for a story that holds no articles).  With ``settings.events`` off, computed over
        every story the index holds."""
        if self.settings.events:
            return event_of(self.index, story_id)
        if not self.index.members(story_id):
            return story_id, []
        grouped = self.events()
        event = grouped[story_id]
        return event, sorted(s for s, e in grouped.items() if e == event)

    def drop(self) -> int:
        """Delete everything the index holds: with a shared index, the whole namespace.  Returns how many
        entries went (articles in process, Redis keys in a shared index)."""
        return self.index.drop()

    def story_sizes(self) -> dict[str, int]:
        """Every story's id and number of articles, without ranking any (one batched read on Redis)."""
        return {sid: len(ids) for sid, ids in self.index.members_many(self.index.story_ids()).items()}
