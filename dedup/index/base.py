"""The storage interface every index implements.

An index keeps, per article, its record and :class:`~dedup.records.Signature`,
the LSH buckets that find it, and which story it belongs to.  It stores and
fetches; it never decides: for a run of arriving articles it reads what it
holds for their candidates (:meth:`StoryIndex.read`), the core's
:func:`dedup.clustering.plan_run` decides, and the index writes the plan
(:meth:`StoryIndex.commit`).  So the in-process and the Redis indexes cluster
identically and run through the same contract tests.

An index shared by several processes overrides :meth:`StoryIndex.ingest` and
:meth:`StoryIndex.ingest_many` to read and write with a re-check of what it
read (the Redis index does), planning with the same function and reading
again after a conflict (:func:`retry_on_conflict`).
"""

from __future__ import annotations

import hashlib
import random
import time
from abc import ABC, abstractmethod
from typing import Callable, Iterable, Mapping, Sequence, TypeVar

from ..clustering import RunPlan, Seen, plan_run
from ..records import Assignment, DedupError, Entry, Signature
from ..settings import Settings

T = TypeVar("T")

MAX_WRITE_ATTEMPTS = 200  # reads and writes of one article (or chunk) that another writer got in the way of


class Conflict:
    """What an attempt to write answers when another writer changed what it read in between."""


CONFLICT = Conflict()


def pause_after_conflict(attempt: int) -> None:
    """Wait a little (at random, longer after each conflict in a row, at most 50 ms) so that writers that
    collided do not collide again."""
    time.sleep(random.uniform(0, min(0.05, 0.001 * (attempt + 1))))


def gave_up(article_id: str, attempts: int, where: str) -> DedupError:
    """The error for an article whose writes other writers got in the way of ``attempts`` times in a row."""
    return DedupError(f"article {article_id!r}: gave up after {attempts} conflicting concurrent updates in {where}; "
                      "retry the article")


def retry_on_conflict(attempt: Callable[[], T | Conflict], article_id: str, where: str) -> T:
    """Run ``attempt`` (read, decide, then commit or answer :data:`CONFLICT`) until it commits, pausing
    after each conflict; an index shared by several writers ingests an article this way."""
    for n in range(MAX_WRITE_ATTEMPTS):
        result = attempt()
        if not isinstance(result, Conflict):
            return result
        pause_after_conflict(n)
    raise gave_up(article_id, MAX_WRITE_ATTEMPTS, where)


class StoryIndex(ABC):
    """Articles, their signatures, LSH buckets and story membership."""

    settings: Settings
    # how many prepared articles Deduper.add_many hands to one ingest_many call
    ingest_batch = 64

    # -- articles ---------------------------------------------------------
    @abstractmethod
    def put(self, entry: Entry) -> None:
        """Store an article's record, signature, buckets and sentence counts (not its story)."""

    @abstractmethod
    def delete(self, article_id: str) -> Entry | None:
        """Remove an article everywhere (record, buckets, story, sentence counts, its event keys and its
        event links both ways); return it."""

    @abstractmethod
    def entries(self, ids: Iterable[str]) -> dict[str, Entry]:
        """Stored records of these ids (missing ids are left out)."""

    @abstractmethod
    def signatures(self, ids: Iterable[str]) -> dict[str, Signature]:
        """Stored signatures of these ids (missing ids are left out)."""

    @abstractmethod
    def __contains__(self, article_id: object) -> bool: ...

    @abstractmethod
    def __len__(self) -> int: ...

    # -- candidates -------------------------------------------------------
    @abstractmethod
    def candidates(self, signature: Signature) -> set[str]:
        """Ids sharing at least one LSH band with ``signature`` and published within the window."""

    # -- stories ----------------------------------------------------------
    @abstractmethod
    def story_of(self, ids: Iterable[str]) -> dict[str, str]:
        """Story id of each stored id."""

    @abstractmethod
    def members(self, story_id: str) -> list[str]:
        """Article ids of a story (empty if unknown)."""

    @abstractmethod
    def set_story(self, story_id: str, ids: Iterable[str]) -> None:
        """Make ``ids`` members of ``story_id``, taking them out of their old stories."""

    @abstractmethod
    def story_ids(self) -> list[str]:
        """Every story id, most recently changed first."""

    def story_snapshot(self, story_id: str) -> tuple[list[str], object]:
        """The members of a story and a token of its version, read together.

        :meth:`resplit` takes the token back and refuses to write if the
        story changed in between.  An index that only one process writes
        needs no token (this default).
        """
        return self.members(story_id), None

    def resplit(self, story_id: str, version: object, parts: list[tuple[str, list[str]]]) -> bool:
        """Move each part's ids to its story if ``story_id`` is still at ``version`` (None: in any case);
        False, writing nothing, if it moved.

        Re-splitting a story after a delete reads its members, computes the
        parts, then writes them: a concurrent ingest that joined the story in
        between would otherwise be left in the wrong part.  This default is
        for an index with a single writer.
        """
        for sid, ids in parts:
            self.set_story(sid, ids)
        return True

    def pending_splits(self) -> list[str]:
        """Stories that lost an article and whose re-split was never written: a process stopped (crash,
        lost connection) between the delete and the re-split.  In process the two happen together (this
        default); a shared index keeps the list with the delete, atomically."""
        return []

    def members_many(self, story_ids: Iterable[str]) -> dict[str, list[str]]:
        """Article ids of several stories at once (unknown stories are left out).

        The dashboard lists 20 to 10,000 stories per request; one call per
        story is one network round trip each on Redis, so indexes that talk
        to a server override this with a single batched read.
        """
        out: dict[str, list[str]] = {}
        for sid in dict.fromkeys(story_ids):
            ids = self.members(sid)
            if ids:
                out[sid] = ids
        return out

    def story_versions(self, limit: int | None = None) -> list[tuple[str, int]]:
        """``(story id, version)`` pairs, most recently changed first (the first ``limit`` only).

        A story's version changes whenever its membership or one of its
        articles changes (a replaced article leaves and rejoins), so a
        reader can cache anything derived from a story under
        ``(id, version)`` and never serve it stale.  Both indexes keep such
        a change clock to order ``story_ids``; this default, for an index
        that does not, derives versions from member ids (which misses an
        article replaced in place: override it).
        """
        ids = self.story_ids()
        if limit is not None:
            ids = ids[:limit]
        members = self.members_many(ids)
        out = []
        for sid in ids:
            digest = hashlib.blake2b("\0".join(members.get(sid, [])).encode(), digest_size=7).digest()
            out.append((sid, int.from_bytes(digest, "big")))
        return out

    # -- event evidence (dedup.events) -----------------------------------------
    @abstractmethod
    def add_event_keys(self, keys: Mapping[str, Sequence[bytes]]) -> None:
        """Record, per article id, the event keys it holds (postings key -> article ids, and the article's own list)."""

    @abstractmethod
    def event_keys(self, ids: Iterable[str]) -> dict[str, list[bytes]]:
        """The keys each stored article holds (ids without keys are left out)."""

    @abstractmethod
    def key_holders(self, keys: Iterable[bytes]) -> dict[bytes, list[str]]:
        """Article ids holding each key, sorted (keys nobody holds are left out)."""

    @abstractmethod
    def add_event_links(self, pairs: Iterable[tuple[str, str]]) -> None:
        """Store article-article event links; a link is symmetric (a, b) == (b, a)."""

    @abstractmethod
    def event_links(self, ids: Iterable[str]) -> dict[str, list[str]]:
        """The article ids linked to each id, sorted (ids without links are left out)."""

    # -- boilerplate evidence ---------------------------------------------
    @abstractmethod
    def sentence_counts(self, hashes: Iterable[int]) -> list[int]:
        """How many stored articles contain each sentence hash."""

    @abstractmethod
    def drop(self) -> int:
        """Delete everything the index holds (articles, buckets, stories, counters, event keys and links);
        returns how many entries went (articles in process, keys in Redis)."""

    # -- lifecycle --------------------------------------------------------
    def close(self) -> None:
        """Release connections; the in-process index has none."""

    def __enter__(self) -> "StoryIndex":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- reading for and writing a plan ----------------------------------------
    def story_taken(self, story_id: str) -> bool:
        """Whether a live story has this id (asked when naming a new story, see clustering.fresh_story_id)."""
        return bool(self.members(story_id))

    def read(self, run: Sequence[Entry]) -> list[Seen]:
        """What the index holds for each article of ``run``: whether its id is stored, its candidates'
        signatures and stories, and the members of a story named after it.  This default reads through
        the primitives above, one article at a time."""
        out = []
        for e in run:
            if e.id in self:
                out.append(Seen(stored=True))
                continue
            cands = self.candidates(e.signature)
            cands.discard(e.id)
            sigs = self.signatures(cands)
            out.append(Seen(sigs=sigs, stories=self.story_of(sigs), own=self.members(e.id)))
        return out

    def commit(self, run: Sequence[Entry], plan: RunPlan) -> None:
        """Store the planned articles of ``run`` and apply their story changes, in order.  An index that
        one process writes needs no re-check: nothing changed since :meth:`read`."""
        for d in plan.decisions:
            entry = run[d.at]
            self.put(entry)
            folded: list[str] = [entry.id]
            for old in d.assignment.merged:
                folded.extend(self.members(old))
            self.set_story(d.assignment.story, folded)

    def ingest(self, entry: Entry) -> Assignment | None:
        """Read, plan and write one article; returns where it went, or None when its id is stored
        already (:func:`dedup.stories.assign` then tells unchanged from replaced)."""
        plan = plan_run([entry], self.read([entry]), self.settings, self.story_taken)
        if not plan.decisions:
            return None
        self.commit([entry], plan)
        return plan.decisions[0].assignment

    def ingest_or_fail(self, entry: Entry) -> Assignment:
        """:meth:`ingest` for a batch given no fallback: an id stored already is an error."""
        result = self.ingest(entry)
        if result is None:
            raise DedupError(f"article {entry.id!r} is stored already: send it through Deduper.add to replace it")
        return result

    def ingest_many(
        self, entries: Sequence[Entry], fallback: Callable[[Entry], Assignment] | None = None
    ) -> list[Assignment | DedupError]:
        """Ingest a batch in input order; errors are returned in place of assignments.

        Runs of fresh articles are read, planned and written together; an
        article whose id is stored already or repeated goes through
        ``fallback`` (``dedup.stories.assign``: unchanged / replaced) at its
        place, so the outcome is the one-at-a-time outcome.
        """
        single = fallback or self.ingest_or_fail
        out: list[Assignment | DedupError] = []
        pos = 0
        while pos < len(entries):
            run = entries[pos:pos + self.ingest_batch]
            seen = self.read(run)
            plan = plan_run(run, seen, self.settings, self.story_taken)
            self.commit(run, plan)
            out += [d.assignment for d in plan.decisions]
            pos += plan.stop
            if plan.stop < len(run):
                try:
                    out.append(single(entries[pos]))
                except DedupError as exc:
                    out.append(exc)
                pos += 1
        return out
