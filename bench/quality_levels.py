"""Quality of the two clustering levels (stories and events) on the labelled data, for pair rules.

Reads ../shared/data at run time (never copied here) and the repository's
seeds.  Every article is signed with the service's own code
(``Deduper.prepare_many``) and given its :func:`dedup.evidence.text_features`.
Pairs are evaluated two ways:

* **all pairs** within the window (the data is small), pre-filtered by the
  sparse cosine of the signatures' word vectors (no rule here links a pair
  below ``PREFILTER`` cosine);
* **LSH candidates**: pairs sharing a band value of the MinHash, as the
  indexes find them (``band_hashes``).

Rules compared: ``current`` (``dedup.clustering.verify_pairs``; events = stories)
and ``evidence`` (:func:`dedup.evidence.links`).  Stories are the connected
components of story links, events those of story and event links.  For each:
meter-dev story precision, event P/R/F1/ARI (METER's ``cluster`` is the event
level), distractors in a METER story or event with bbc-distractors added, the
largest event (size, purity), SemEval pair rates and the seeds' partitions.
Then what LSH candidacy loses for event links, and how each figure moves when
each threshold moves by +-20%.

    PYTHONPATH=. python bench/quality_levels.py [--data ../shared/data] [--no-sensitivity]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import scipy.sparse as sp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from dedup.evaluate import scores  # noqa: E402
from dedup.evidence import links, pair_evidence, text_features  # noqa: E402
from dedup.clustering import verify_pairs, within_window  # noqa: E402
from dedup.readers import read_labels, read_paths  # noqa: E402
from dedup.records import Article  # noqa: E402
from dedup.service import Deduper  # noqa: E402
from dedup.settings import Settings  # noqa: E402
from dedup.signature import band_hashes, sign_many  # noqa: E402
from dedup.text import normalize  # noqa: E402

PREFILTER = 0.12  # below every cosine threshold of the +-20% table (0.8 x 0.2 = 0.16)


@dataclasses.dataclass
class Corpus:
    ids: list[str]
    sigs: list
    feats: list
    labels: list[str | None]
    all_pairs: list[tuple[int, int]]
    lsh_pairs: set[tuple[int, int]]
    cleans: list[str] = dataclasses.field(default_factory=list)
    sources: list[str] = dataclasses.field(default_factory=list)


def load(paths: list[str], settings: Settings) -> Corpus:
    arts = [a for a in read_paths(paths) if isinstance(a, Article)]
    labels: dict[str, str | None] = {}
    for p in paths:
        if p.endswith(".jsonl"):
            labels.update(read_labels(p))
    dd = Deduper(settings)
    entries = dd.prepare_many(arts)
    keep = [(a, e) for a, e in zip(arts, entries) if hasattr(e, "signature")]
    ids = [e.id for _, e in keep]
    sigs = [e.signature for _, e in keep]
    cleans = [normalize(a.text, a.title)[0] for a, _ in keep]
    feats = [text_features(c) for c in cleans]
    return Corpus(ids, sigs, feats, [labels.get(i) for i in ids], _window_pairs(sigs, settings),
                  _lsh_pairs(sigs, settings), cleans, [a.source for a, _ in keep])


def _window_pairs(sigs: list, settings: Settings) -> list[tuple[int, int]]:
    """Pairs within the window whose sparse cosine reaches PREFILTER."""
    n = len(sigs)
    rows = np.concatenate([np.full(len(s.term_ids), k) for k, s in enumerate(sigs)])
    cols = np.concatenate([s.term_ids.astype(np.int64) for s in sigs])
    vals = np.concatenate([s.term_weights for s in sigs]).astype(np.float64)
    x = sp.csr_matrix((vals, (rows, cols)), shape=(n, 1 << 24))
    c = (x @ x.T).tocoo()
    out = []
    for i, j, v in zip(c.row.tolist(), c.col.tolist(), c.data.tolist()):
        if i < j and v >= PREFILTER and within_window(sigs[i].day, sigs[j].day, settings.window_days):
            out.append((i, j))
    return sorted(out)


def _lsh_pairs(sigs: list, settings: Settings) -> set[tuple[int, int]]:
    buckets: dict[tuple[int, bytes], list[int]] = {}
    for k, s in enumerate(sigs):
        for band, value in enumerate(band_hashes(s.minhash, settings.bands, settings.rows)):
            buckets.setdefault((band, value), []).append(k)
    return {(m[a], m[b]) for m in buckets.values() for a in range(len(m)) for b in range(a + 1, len(m))}


def components(n: int, edges) -> list[int]:
    parent = list(range(n))

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for i, j in edges:
        ri, rj = find(i), find(j)
        if ri != rj:
            parent[max(ri, rj)] = min(ri, rj)
    return [find(x) for x in range(n)]


def pair_links(c: Corpus, pairs: list[tuple[int, int]], rule: str, settings: Settings) -> list[tuple[bool, bool]]:
    a = [c.sigs[i] for i, _ in pairs]
    b = [c.sigs[j] for _, j in pairs]
    if rule == "current":
        return [(ok, ok) for ok, _, _ in verify_pairs(a, b, settings)]
    return links(a, b, [c.feats[i] for i, _ in pairs], [c.feats[j] for _, j in pairs], settings)


def levels(c: Corpus, pairs: list[tuple[int, int]], verdicts: list[tuple[bool, bool]]) -> tuple[list[int], list[int]]:
    n = len(c.ids)
    story = components(n, [p for p, (s, _) in zip(pairs, verdicts) if s])
    event = components(n, [p for p, (_, e) in zip(pairs, verdicts) if e])
    return story, event


def meter_figures(c: Corpus, story: list[int], event: list[int]) -> dict:
    lab = [k for k, g in enumerate(c.labels) if g is not None]
    gold = [c.labels[k] for k in lab]
    s = scores(gold, [story[k] for k in lab])
    e = scores(gold, [event[k] for k in lab])

    def foreign(part: list[int]) -> int:
        labelled = {part[k] for k in lab}
        return sum(1 for k, g in enumerate(c.labels) if g is None and part[k] in labelled)

    sizes = Counter(event)
    big = max(sizes, key=lambda r: sizes[r])
    members = [c.labels[k] for k in range(len(c.ids)) if event[k] == big]
    top = Counter(members).most_common(1)[0][1]
    return {
        "story_P": s["pairwise_precision"], "story_R": s["pairwise_recall"], "story_F1": s["pairwise_f1"],
        "event_P": e["pairwise_precision"], "event_R": e["pairwise_recall"], "event_F1": e["pairwise_f1"],
        "event_ARI": e["ari"], "distractors_in_story": foreign(story), "distractors_in_event": foreign(event),
        "largest_event": sizes[big], "largest_event_purity": round(top / sizes[big], 3),
    }


def semeval_figures(c: Corpus, pairs_path: Path, story: list[int], event: list[int]) -> dict:
    pos = {x: k for k, x in enumerate(c.ids)}
    rows = [json.loads(line) for line in pairs_path.read_text().splitlines() if line.strip()]
    rows = [r for r in rows if str(r["id1"]) in pos and str(r["id2"]) in pos]
    hi = [(pos[str(r["id1"])], pos[str(r["id2"])]) for r in rows if r["overall"] >= 3.5]
    lo = [(pos[str(r["id1"])], pos[str(r["id2"])]) for r in rows if r["overall"] <= 1.5]
    return {
        "different_in_story": f"{sum(story[a] == story[b] for a, b in hi)}/{len(hi)}",
        "different_in_event": f"{sum(event[a] == event[b] for a, b in hi)}/{len(hi)}",
        "same_event_in_event": f"{sum(event[a] == event[b] for a, b in lo)}/{len(lo)}"
        f" ({sum(event[a] == event[b] for a, b in lo) / max(1, len(lo)):.1%})",
    }


def partition(c: Corpus, part: list[int]) -> str:
    groups: dict[int, list[str]] = {}
    for k, i in enumerate(c.ids):
        groups.setdefault(part[k], []).append(i.split("_")[0])
    return " ".join("{" + ",".join(sorted(g)) + "}" for g in sorted(groups.values()))


def run(corpora: dict[str, Corpus], data: Path, rule: str, settings: Settings, candidates: str = "all") -> dict:
    out: dict = {}
    for name, c in corpora.items():
        pairs = c.all_pairs if candidates == "all" else [p for p in c.all_pairs if p in c.lsh_pairs]
        story, event = levels(c, pairs, pair_links(c, pairs, rule, settings))
        if name == "meter":
            out.update(meter_figures(c, story, event))
        elif name == "semeval":
            out.update(semeval_figures(c, data / "semeval-dev-pairs.jsonl", story, event))
        else:
            out["seed_stories"] = partition(c, story)
            out["seed_events"] = partition(c, event)
    return out


def _top_terms(f, k: int, names_only: bool) -> set[int]:
    """An article's k heaviest distinct words ((1 + log tf) * idf), or its k rarest names."""
    ids, counts = np.unique(f.words, return_counts=True)
    idf_of = dict(zip(f.words.tolist(), f.weights.tolist()))
    named = set(f.words[f.names].tolist())
    scored = sorted(((-(idf_of[t] if names_only else (1 + np.log(n)) * idf_of[t]), t)
                     for t, n in zip(ids.tolist(), counts.tolist()) if not names_only or t in named))
    return {t for _, t in scored[:k]}


def lsh_loss(corpora: dict[str, Corpus], data: Path, settings: Settings) -> None:
    """Links among all pairs that LSH does not make candidates, and what a second candidate key adds:
    pairs sharing one of their rarest names, or one of their key_terms heaviest words."""
    keys = {
        "3 rarest names": lambda f: _top_terms(f, 3, True),
        "5 rarest names": lambda f: _top_terms(f, 5, True),
        f"{settings.key_terms} heaviest words": lambda f: _top_terms(f, settings.key_terms, False),
        f"{settings.key_terms} heaviest words or 5 rarest names":
            lambda f: _top_terms(f, settings.key_terms, False) | _top_terms(f, 5, True),
    }
    for name in ("meter", "semeval"):
        c = corpora[name]
        verdicts = pair_links(c, c.all_pairs, "evidence", settings)
        ev = [p for p, (s, e) in zip(c.all_pairs, verdicts) if e and not s]
        st = [p for p, (s, e) in zip(c.all_pairs, verdicts) if s]
        miss_ev = [p for p in ev if p not in c.lsh_pairs]
        miss_st = [p for p in st if p not in c.lsh_pairs]
        print(f"  {name}: story links {len(st)}, not LSH candidates {len(miss_st)}; event-only links {len(ev)}, "
              f"not LSH candidates {len(miss_ev)} ({len(miss_ev) / max(1, len(ev)):.1%}); LSH candidates among "
              f"the {len(c.all_pairs)} prefiltered window pairs: {sum(1 for p in c.all_pairs if p in c.lsh_pairs)}")
        for label, key in keys.items():
            sets = [key(f) for f in c.feats]
            extra = {p for p in c.all_pairs if sets[p[0]] & sets[p[1]]}
            n_all = len(c.ids)
            # candidates a key adds over all window pairs, not only the prefiltered ones
            buckets: dict[int, list[int]] = {}
            for k, s in enumerate(sets):
                for t in s:
                    buckets.setdefault(t, []).append(k)
            keyed = {(m[a], m[b]) for m in buckets.values() for a in range(len(m)) for b in range(a + 1, len(m))
                     if within_window(c.sigs[m[a]].day, c.sigs[m[b]].day, settings.window_days)}
            widened = Corpus(c.ids, c.sigs, c.feats, c.labels, c.all_pairs, c.lsh_pairs | extra)
            figures = run({name: widened}, data, "evidence", settings, "lsh")
            shown = {k: figures[k] for k in ("event_F1", "event_ARI", "same_event_in_event", "different_in_event")
                     if k in figures}
            print(f"    + key '{label}': recovers {sum(1 for p in miss_ev if p in extra)} of the missed event links; "
                  f"adds {len(keyed - c.lsh_pairs)} candidate pairs in the window ({2 * len(keyed - c.lsh_pairs) / n_all:.1f} "
                  f"per article; LSH band-sharing pairs: {2 * len(c.lsh_pairs) / n_all:.1f} per article, any day); with LSH: {shown}")


def recurring_lines(c: Corpus, story: list[int], many: int = 3) -> set[tuple[str, str]]:
    """Feed-level template lines: (source, line) pairs found in articles of two or more stories of one
    source, or, for articles without a source, in ``many`` or more stories.  Stories are the rule's
    own (no labels).  The state an index would keep: per (source, line hash), the stories holding it."""
    seen: dict[tuple[str, str], set[int]] = {}
    for k, clean in enumerate(c.cleans):
        for line in {line for line in clean.split("\n") if line}:
            seen.setdefault((c.sources[k], line.casefold()), set()).add(story[k])
    return {key for key, stories in seen.items() if len(stories) >= (2 if key[0] else many)}


def without_lines(c: Corpus, lines: set[tuple[str, str]], settings: Settings) -> Corpus:
    """The corpus signed again with the given feed-level template lines removed from each article."""
    cleans = ["\n".join(line for line in clean.split("\n") if (src, line.casefold()) not in lines) or clean
              for clean, src in zip(c.cleans, c.sources)]
    sigs = sign_many(cleans, [s.day for s in c.sigs], settings)
    sigs = [new if new is not None else old for new, old in zip(sigs, c.sigs)]
    return Corpus(c.ids, sigs, [text_features(t) for t in cleans], c.labels, _window_pairs(sigs, settings),
                  _lsh_pairs(sigs, settings), cleans, c.sources)


def feed_boilerplate(corpora: dict[str, Corpus], data: Path, settings: Settings) -> None:
    """What removing lines that recur across stories adds beyond the pair rule."""
    for name in ("meter", "semeval"):
        c = corpora[name]
        story, _ = levels(c, c.all_pairs, pair_links(c, c.all_pairs, "evidence", settings))
        lines = recurring_lines(c, story)
        touched = sum(1 for clean, src in zip(c.cleans, c.sources)
                      if any((src, line.casefold()) in lines for line in clean.split("\n")))
        shown = sorted({line for _, line in lines}, key=len)[:4]
        print(f"  {name}: {len(lines)} recurring lines in {touched} articles, e.g. {shown}")
        figures = run({name: without_lines(c, lines, settings)}, data, "evidence", settings)
        print(f"    evidence rule without them: {figures}")
    novelty = data / "novelty-dev.jsonl"
    gold = data / "novelty-dev-gold.json"
    if novelty.exists() and gold.exists():
        n = load([str(novelty)], settings)
        story, _ = levels(n, n.all_pairs, pair_links(n, n.all_pairs, "evidence", settings))
        found = {line for _, line in recurring_lines(n, story)}
        footers = {normalize(f)[0].casefold() for f in json.loads(gold.read_text())["footers"]}
        print(f"  novelty-dev: {len(found)} recurring lines; gold footers found {len(found & footers)}/{len(footers)}; "
              f"other lines flagged {len(found - footers)} {sorted(found - footers, key=len)[:3]}")


def seed_pairs(c: Corpus, settings: Settings) -> None:
    """Every seed pair's evidence: which content figures could tell the seeds' events apart."""
    for i in range(len(c.ids)):
        for j in range(i + 1, len(c.ids)):
            e = pair_evidence(c.sigs[i], c.sigs[j], c.feats[i], c.feats[j], settings)
            story, event = links([c.sigs[i]], [c.sigs[j]], [c.feats[i]], [c.feats[j]], settings)[0]
            print(f"  {c.ids[i][:3]}-{c.ids[j][:3]}: cosine {e.cosine:.3f} reuse {e.reuse:.3f} names {e.names:5.1f}"
                  f" -> story {story!s:5} event {event}")


def show(title: str, figures: dict) -> None:
    print(title)
    for k, v in figures.items():
        print(f"  {k:24} {v}")


SENSITIVE = ("event_min_cosine", "event_min_names", "template_gap", "min_cosine", "min_reuse")
COLUMNS = ("story_P", "event_F1", "event_ARI", "distractors_in_story", "distractors_in_event", "largest_event",
           "different_in_story", "different_in_event", "same_event_in_event", "seed_stories", "seed_events")


def sensitivity(corpora: dict[str, Corpus], data: Path, base: Settings) -> None:
    print("\n+-20% of each threshold (rule 'evidence', all pairs in the window)")
    print("| setting | value | " + " | ".join(COLUMNS) + " |")
    print("|" + " --- |" * (len(COLUMNS) + 2))
    for name in SENSITIVE:
        for factor in (0.8, 1.0, 1.2):
            value = getattr(base, name) * factor
            if isinstance(getattr(base, name), int):
                value = round(value)
            if factor == 1.0 and name != SENSITIVE[0]:
                continue
            s = dataclasses.replace(base, **{name: value})
            f = run(corpora, data, "evidence", s)
            label = "(all defaults)" if factor == 1.0 else name
            print(f"| {label} | {value:g} | " + " | ".join(str(f[k]) for k in COLUMNS) + " |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    ap.add_argument("--no-sensitivity", action="store_true")
    args = ap.parse_args()
    data = Path(args.data)
    if not (data / "meter-dev.jsonl").exists():
        sys.exit(f"labelled data not found in {data}: this benchmark needs ../shared/data (see its README)")
    settings = Settings()
    t0 = time.perf_counter()
    corpora = {
        "meter": load([str(data / "meter-dev.jsonl"), str(data / "bbc-distractors.jsonl")], settings),
        "semeval": load([str(data / "semeval-dev-articles.jsonl")], settings),
        "seeds": load([str(ROOT / "seeds")], settings),
    }
    print(f"signed {sum(len(c.ids) for c in corpora.values())} articles in {time.perf_counter() - t0:.1f} s; "
          f"prefiltered window pairs: meter+bbc {len(corpora['meter'].all_pairs)}, "
          f"semeval {len(corpora['semeval'].all_pairs)}")
    m = corpora["meter"]
    t0 = time.process_time()
    pair_links(m, m.all_pairs, "evidence", settings)
    t_pairs = time.process_time() - t0
    t0 = time.process_time()
    pair_links(m, m.all_pairs, "current", settings)
    t_current = time.process_time() - t0
    texts = [normalize(a.text, a.title)[0] for a in read_paths([str(data / "meter-dev.jsonl")]) if isinstance(a, Article)]
    t0 = time.process_time()
    for t in texts:
        text_features(t)
    t_feats = time.process_time() - t0
    print(f"CPU cost: text_features {1e6 * t_feats / len(texts):.0f} us per article; links "
          f"{1e6 * t_pairs / len(m.all_pairs):.0f} us per pair (verify_pairs: {1e6 * t_current / len(m.all_pairs):.1f})")
    for rule in ("current", "evidence"):
        for candidates in ("lsh", "all"):
            show(f"\nrule {rule!r}, {'LSH candidates' if candidates == 'lsh' else 'all pairs in the window'}",
                 run(corpora, data, rule, settings, candidates))
    print("\nwhat LSH candidacy loses (rule 'evidence')")
    lsh_loss(corpora, data, settings)
    print("\nseed pairs (rule 'evidence')")
    seed_pairs(corpora["seeds"], settings)
    print("\nfeed-level template lines (recurring across the rule's stories, per source)")
    feed_boilerplate(corpora, data, settings)
    if not args.no_sensitivity:
        sensitivity(corpora, data, settings)


if __name__ == "__main__":
    main()
