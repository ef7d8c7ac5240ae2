"""Every tunable of dedup, declared once.

Each setting has a name, a type, a default and a help text.  The CLI turns
every setting into a ``--flag`` and reads ``DEDUP_<NAME>`` from the
environment; the README table is generated from the same list
(``dedup settings --markdown``).  Nothing else in the package hard-codes a
threshold.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field, fields
from typing import Any, Mapping

ENV_PREFIX = "DEDUP_"


def _setting(default: Any, help: str, *, group: str = "clustering") -> Any:
    return field(default=default, metadata={"help": help, "group": group})


def _parse_bool(raw: str) -> bool:
    """A boolean from the environment: bool("false") would be True."""
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"{raw!r} is not a boolean (use true/false, yes/no, on/off or 1/0)")


class DeclaredSettings:
    """What every settings dataclass shares: declared fields with help, ``DEDUP_*`` names, CLI values."""

    @classmethod
    def declared(cls) -> list[dataclasses.Field]:
        return list(fields(cls))  # type: ignore[arg-type]

    @classmethod
    def env_name(cls, name: str) -> str:
        return ENV_PREFIX + name.upper()

    @classmethod
    def from_values(cls, values: Mapping[str, Any]):
        """Settings from parsed CLI values (None = not given, keep the default)."""
        names = {f.name for f in fields(cls)}  # type: ignore[arg-type]
        return cls(**{k: v for k, v in values.items() if k in names and v is not None})


@dataclass(frozen=True)
class Settings(DeclaredSettings):
    """Clustering, ranking and storage parameters.

    Defaults were chosen with ``dedup eval`` on labelled data (see README,
    "Quality"); they are not fitted to the seed articles.
    """

    # -- signatures -------------------------------------------------------
    num_perm: int = _setting(32, "MinHash permutations per signature (must equal bands x rows).", group="signature")
    bands: int = _setting(32, "LSH bands; more bands find weaker rewrites but return more candidates.", group="signature")
    rows: int = _setting(1, "Rows (hash values) per LSH band.", group="signature")
    key_terms: int = _setting(
        10,
        "How many of an article's most informative words go into its MinHash. "
        "Rewrites keep names and rare words, so a small key set collides where whole-text shingles do not.",
        group="signature",
    )
    seed: int = _setting(1, "MinHash permutation seed; an index must be built and queried with one seed.", group="signature")
    # -- verification -----------------------------------------------------
    min_cosine: float = _setting(
        0.2, "Least cosine similarity of the IDF-weighted word vectors for two articles to be one story."
    )
    min_reuse: float = _setting(
        0.035,
        "Least share of the shorter article's content-word trigrams found in the other: the text-reuse "
        "evidence that separates a rewrite from another wire's story on the same event.",
    )
    window_days: int = _setting(
        1, "Two articles can be one story only if published at most this many days apart."
    )
    event_min_cosine: float = _setting(
        0.24,
        "Least cosine of the IDF-weighted word vectors for two articles within the window to be one event "
        "(independent reports of one news event) without sharing text; names must back it (event_min_names).",
    )
    event_min_names: float = _setting(
        8.0,
        "Least summed IDF of the distinct words two articles both write as a name (capitalized mid-sentence) "
        "or figure for an event link: one rare name (IDF 8 = never seen in English text) or a few "
        "uncommon ones. A beat's shared vocabulary ('jury', 'chart') is not written as a name.",
    )
    events: bool = _setting(
        True,
        "Keep the second level, events (the stories that report one news event), as articles are stored: "
        "decide each new article's event links and store them in the index. Off, ingest only makes "
        "stories (faster), and events are computed over the stored articles when they are read; an index "
        "built with it off holds no event links, so read it with it off too.",
    )
    template_gap: int = _setting(
        7,
        "Largest gap, in trigrams, inside a run of shared trigrams at the head or tail of two articles "
        "for it to count as one outlet template block: k differing words leave a gap of k + 3, so 7 "
        "lets a block hold a differing time and day stamp of up to four words. When the rest of the two "
        "articles is below min_cosine, the block is set aside: it is not reuse for a story link, and its "
        "names do not count for an event link.",
    )
    # -- novelty ranking --------------------------------------------------
    same_sentence: float = _setting(
        0.5,
        "Sentence TF-IDF cosine at or above which a sentence of another variant 'says the same'.",
        group="ranking",
    )
    # two content words make a statement ("The trial was adjourned", "The operation was not for anorexia");
    # one is an answer or a fragment ("He said: No.")
    min_sentence_words: int = _setting(
        2, "Sentences with fewer content words are never reported as unique.", group="ranking"
    )
    # -- runtime ----------------------------------------------------------
    jobs: int = _setting(
        1,
        "Processes that normalize and sign a batch in parallel (assignment stays in one process, so results "
        "do not change); 0 means one per CPU.",
        group="runtime",
    )
    # -- storage ----------------------------------------------------------
    retain_days: int = _setting(
        0,
        "Shared (Redis) index only: keep articles published at most this many days before the newest one "
        "seen; older ones are deleted and their stories re-split as new days arrive. 0 keeps everything.",
        group="redis",
    )
    store_features: bool = _setting(
        False,
        "Shared (Redis) index only: records keep each article's term vector, trigrams and word hashes (~1.7 kB "
        "more per article) instead of signing the text again when another process first reads "
        "them (~0.25-1 ms per record). Worth it with several workers on a busy stream; either way the "
        "clusters are the same, and a namespace may hold both kinds of record.",
        group="redis",
    )
    redis_spin_us: int = _setting(
        1000,
        "Shared (Redis) index only: how long a client waiting for a script's reply polls the socket before "
        "it blocks, in microseconds. Waking a blocked process costs tens of microseconds per round trip on "
        "a VM, a fifth to a third of a streamed article's time; polling spends that CPU instead. 0 always "
        "blocks (one CPU, or a box whose CPUs are all busy); never polls when the process may only run on "
        "one CPU, nor over TLS.",
        group="redis",
    )
    redis_retry_s: float = _setting(
        5.0,
        "Shared (Redis) index only: how long, in seconds, a call keeps retrying a lost server (a restart, a "
        "network blip, a Redis Cluster failover) before it fails with an error naming the URL. Waits "
        "0.1 s, doubling to at most 2 s between tries. On a cluster, set it above cluster-node-timeout "
        "plus a few seconds to ride out a failover (Redis's default timeout of 15 s wants ~20). The "
        "worker retries a message whatever this is; the CLI stops its batch when it runs out.",
        group="redis",
    )
    redis_mirror: int = _setting(
        20000,
        "Shared (Redis) index only, 'slot' layout: how many recent articles' LSH buckets a client keeps a "
        "copy of (~3 kB each), so that it can decide a streamed article on the candidates it expects and "
        "send the decision with the candidate read: one round trip instead of two when the server finds "
        "exactly those candidates (it checks; otherwise the article takes the usual two). 0 turns it off.",
        group="redis",
    )
    redis_layout: str = _setting(
        "auto",
        "Shared (Redis) index only: 'slot' keeps a whole index in one Redis Cluster slot (one to two round "
        "trips per article, but one master does all of an index's work); 'spread' puts the LSH buckets "
        "and the records in 6 slots of their own (band groups), so a cluster's masters share the work and "
        "the memory (three to four round trips per article, more server CPU in all); 'auto' is 'spread' "
        "for redis+cluster:// "
        "URLs and 'slot' otherwise. Part of a namespace's fingerprint: reopen a namespace with the "
        "layout it was built with.",
        group="redis",
    )
    redis_allow_eviction: bool = _setting(
        False,
        "Shared (Redis) index only: open an index on a server whose maxmemory-policy may evict its keys "
        "(allkeys-*), which is refused otherwise: an evicted key silently drops articles from their stories. "
        "Keep it off and run Redis with maxmemory-policy noeviction.",
        group="redis",
    )
    # -- input ------------------------------------------------------------
    max_chars: int = _setting(
        2_000_000, "Articles longer than this many characters are rejected as bad input.", group="input"
    )

    def __post_init__(self) -> None:
        if self.bands * self.rows != self.num_perm:
            raise ValueError(
                f"bands x rows must equal num_perm (got {self.bands} x {self.rows} != {self.num_perm}); "
                "set --num-perm, --bands and --rows consistently"
            )
        for name in ("bands", "rows", "key_terms", "num_perm", "max_chars"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        if self.jobs < 0:
            raise ValueError("jobs must be 0 (one per CPU) or more")
        if self.window_days < 0:
            raise ValueError("window_days must be 0 or more")
        if self.retain_days < 0:
            raise ValueError("retain_days must be 0 or more")
        if self.redis_retry_s < 0:
            raise ValueError("redis_retry_s must be 0 or more")
        if self.redis_spin_us < 0:
            raise ValueError("redis_spin_us must be 0 or more")
        if self.redis_mirror < 0:
            raise ValueError("redis_mirror must be 0 or more")
        if self.redis_layout not in ("auto", "slot", "spread"):
            raise ValueError(f"redis_layout must be auto, slot or spread, not {self.redis_layout!r}")

    # ------------------------------------------------------------------
    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> "Settings":
        """Defaults, then ``DEDUP_*`` variables, then explicit overrides."""
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = environ.get(cls.env_name(f.name))
            if raw is not None:
                try:
                    values[f.name] = _parse_bool(raw) if isinstance(f.default, bool) else type(f.default)(raw)
                except ValueError as exc:
                    raise ValueError(f"{cls.env_name(f.name)}={raw!r} is not a valid {type(f.default).__name__}") from exc
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    def shared_only(self) -> list[str]:
        """The settings given a value other than their default that only the shared (Redis) index uses."""
        return [f.name for f in fields(self) if f.metadata.get("group") == "redis" and getattr(self, f.name) != f.default]

    def fingerprint(self) -> dict[str, Any]:
        """The settings an index depends on: changing them needs a new index."""
        return {k: getattr(self, k) for k in ("num_perm", "bands", "rows", "key_terms", "seed")}

    @classmethod
    def markdown_table(cls) -> str:
        lines = ["| setting | env var | default | meaning |", "| --- | --- | --- | --- |"]
        for f in fields(cls):
            flag = "--" + f.name.replace("_", "-")
            lines.append(f"| `{flag}` | `{cls.env_name(f.name)}` | `{f.default}` | {f.metadata['help']} |")
        return "\n".join(lines)
