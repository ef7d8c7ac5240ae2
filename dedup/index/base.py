"""The storage interface every index implements.

An index keeps, per article, its record and :class:`~dedup.records.Signature`,
the LSH buckets that find it, and which story it belongs to.  It knows
nothing about *how* stories are decided: :mod:`dedup.stories` does that
through these primitives, so the in-process and the Redis index cluster
identically and are run through the same tests.

Implementations may override :meth:`StoryIndex.ingest` to do the whole
query-verify-insert step atomically (the Redis index does), as long as the
outcome equals the default's.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from typing import Callable, Iterable, Protocol, Sequence

from ..records import Assignment, DedupError, Entry, Signature
from ..settings import Settings

class Decide(Protocol):
    """What an index calls to assign an article once it has found its candidates (dedup.stories.make_decider).

    ``sigs`` and ``stories`` hold the candidates' signatures and stories by id.  An index that verified
    a whole batch of candidate pairs at once (the decider's ``verify_pairs``) passes ``verdicts``, the
    (linked, cosine, reuse) of the candidates in ``sigs``, so the decider does not verify them again;
    ``sigs`` may then hold only the linked candidates (the others cannot change the decision).
    """

    def __call__(self, entry: Entry, sigs: dict[str, Signature], stories: dict[str, str],
                 verdicts: dict[str, tuple[bool, float, float]] | None = None) -> Assignment: ...


class StoryIndex(ABC):
    """Articles, their signatures, LSH buckets and story membership."""

    settings: Settings
    # True when ingest() itself handles an id that is already stored the way dedup.stories.assign
    # does (same content: ``unchanged``; new version: replaced, action ``replaced``)
    ingest_checks_stored = False
    # how many prepared articles Deduper.add_many hands to one ingest_many call
    ingest_batch = 64

    # -- articles ---------------------------------------------------------
    @abstractmethod
    def put(self, entry: Entry) -> None:
        """Store an article's record, signature, buckets and sentence counts (not its story)."""

    @abstractmethod
    def delete(self, article_id: str) -> Entry | None:
        """Remove an article everywhere (record, buckets, story, sentence counts); return it."""

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

    # -- boilerplate evidence ---------------------------------------------
    @abstractmethod
    def sentence_counts(self, hashes: Iterable[int]) -> list[int]:
        """How many stored articles contain each sentence hash."""

    # -- lifecycle --------------------------------------------------------
    def close(self) -> None:
        """Release connections; the in-process index has none."""

    def __enter__(self) -> "StoryIndex":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the one compound step ---------------------------------------------
    def ingest(self, entry: Entry, decide: Decide) -> Assignment:
        """Query, verify and insert one article; returns where it went.

        ``decide`` (from :mod:`dedup.stories`) gets the entry, the candidates'
        signatures and their stories and returns the assignment; the index
        then stores the article and applies the story change.
        """
        cands = self.candidates(entry.signature)
        cands.discard(entry.id)
        sigs = self.signatures(cands)
        stories = self.story_of(sigs)
        assignment = decide(entry, sigs, stories)
        self.put(entry)
        folded: list[str] = [entry.id]
        for old in assignment.merged:
            folded.extend(self.members(old))
        self.set_story(assignment.story, folded)
        return assignment

    def ingest_many(
        self, entries: Sequence[Entry], decide: Decide, fallback: Callable[[Entry], Assignment] | None = None
    ) -> list[Assignment | DedupError]:
        """Ingest a batch in input order; errors are returned in place of assignments.

        The default goes one article at a time through ``fallback``
        (``dedup.stories.assign``); the Redis index overrides it to batch
        round trips while giving the same outcome.
        """
        single = fallback or (lambda e: self.ingest(e, decide))
        out: list[Assignment | DedupError] = []
        for e in entries:
            try:
                out.append(single(e))
            except DedupError as exc:
                out.append(exc)
        return out
