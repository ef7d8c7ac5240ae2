"""Clustering quality against gold story labels.

Pairwise precision / recall / F1 count article pairs: a pair is predicted
when both articles land in one story, true when both carry one gold label.
ARI is scikit-learn's ``adjusted_rand_score``; B-cubed F1 averages, per
article, the precision and recall of its own story.  Only labelled articles
are scored; unlabelled background articles (distractors) are clustered in
the same run, so a false merge with them still splits or joins labelled
stories, and ``foreign_merges`` counts labelled articles whose story took in
an unlabelled one.
"""

from __future__ import annotations

import json
import math
from collections import Counter, defaultdict
from typing import Hashable, Iterable, Sequence

from sklearn.metrics import adjusted_rand_score

from .readers import read_pairs
from .records import BadInput, Story
from .text import normalize_chars, tokens


def _pairs(n: int) -> int:
    return n * (n - 1) // 2


def pair_counts(gold: Sequence[Hashable], pred: Sequence[Hashable]) -> tuple[int, int, int]:
    """(true positive, predicted, true) pair counts from the contingency table."""
    if len(gold) != len(pred):
        raise ValueError("gold and predicted labels differ in length")
    joint = Counter(zip(gold, pred))
    tp = sum(_pairs(c) for c in joint.values())
    predicted = sum(_pairs(c) for c in Counter(pred).values())
    true = sum(_pairs(c) for c in Counter(gold).values())
    return tp, predicted, true


def bcubed_f1(gold: Sequence[Hashable], pred: Sequence[Hashable]) -> float:
    joint = Counter(zip(gold, pred))
    g, p = Counter(gold), Counter(pred)
    n = len(gold)
    if n == 0:
        return 0.0
    precision = sum(joint[(a, b)] ** 2 / p[b] for (a, b) in joint) / n
    recall = sum(joint[(a, b)] ** 2 / g[a] for (a, b) in joint) / n
    return 2 * precision * recall / (precision + recall) if precision + recall else 0.0


def scores(gold: Sequence[Hashable], pred: Sequence[Hashable]) -> dict[str, float]:
    """Pairwise P/R/F1, ARI and B-cubed F1 of a predicted clustering."""
    tp, predicted, true = pair_counts(gold, pred)
    precision = tp / predicted if predicted else 1.0
    recall = tp / true if true else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "pairwise_precision": round(precision, 4),
        "pairwise_recall": round(recall, 4),
        "pairwise_f1": round(f1, 4),
        "ari": round(float(adjusted_rand_score(list(gold), list(pred))), 4),
        "bcubed_f1": round(bcubed_f1(gold, pred), 4),
        "articles": len(gold),
        "gold_stories": len(set(gold)),
        "predicted_stories": len(set(pred)),
    }


def evaluate(labels: dict[str, str | None], story_of: dict[str, str]) -> dict[str, float]:
    """Score ``story_of`` (article id -> story) on the labelled ids of ``labels``.

    Unlabelled ids (``None``) are not scored; a labelled article missing
    from ``story_of`` (rejected as bad input) counts as a story of its own.
    """
    scored = sorted(i for i, g in labels.items() if g is not None)
    if not scored:
        raise ValueError("no labelled article to score: give the gold articles a 'cluster' field")
    gold = [labels[i] for i in scored]
    pred = [story_of.get(i, f"<missing:{i}>") for i in scored]
    result = scores(gold, pred)
    unlabelled_in: dict[str, int] = defaultdict(int)
    for i, s in story_of.items():
        if labels.get(i) is None:
            unlabelled_in[s] += 1
    result["foreign_merges"] = sum(1 for i in scored if unlabelled_in.get(story_of.get(i, ""), 0))
    result["missing"] = sum(1 for i in scored if i not in story_of)
    return result


def pair_report(pairs: str | Iterable[tuple[str, str, float]], story_of: dict[str, str],
                score_field: str = "overall") -> dict:
    """How many labelled pairs (e.g. SemEval's) were put in one story, by their score.

    ``pairs`` is a pairs JSONL file or its :func:`~dedup.readers.read_pairs`.
    """
    if isinstance(pairs, str):
        pairs = read_pairs(pairs, score_field)
    buckets: dict[float, list[int]] = defaultdict(lambda: [0, 0])
    missing = 0
    for a, b, overall in pairs:
        if a not in story_of or b not in story_of:
            missing += 1
            continue
        score = math.floor(overall * 2) / 2  # half-point buckets: 3.5 holds [3.5, 4)
        buckets[score][1] += 1
        if story_of[a] == story_of[b]:
            buckets[score][0] += 1
    rows = [
        {"score": k, "pairs": v[1], "merged": v[0], "merged_share": round(v[0] / v[1], 4) if v[1] else 0.0}
        for k, v in sorted(buckets.items())
    ]
    hi = [r for r in rows if r["score"] >= 3.5]
    hi_pairs = sum(r["pairs"] for r in hi)
    hi_merged = sum(r["merged"] for r in hi)
    return {
        "by_score": rows,
        "different_story_pairs": hi_pairs,
        "different_story_merged": hi_merged,
        "different_story_merged_share": round(hi_merged / hi_pairs, 4) if hi_pairs else 0.0,
        "pairs_missing_articles": missing,
    }


def word_set(sentence: str) -> frozenset[str]:
    """The words of a sentence, case, quotes and punctuation ignored (PA's ``#`` read as ``£``)."""
    return frozenset(tokens(normalize_chars(sentence)))


def jaccard(a: frozenset[str], b: frozenset[str]) -> float:
    return len(a & b) / len(a | b) if a or b else 0.0


SAME_SENTENCE_JACCARD = 0.6  # the gold file's definition of a reported sentence matching a gold one


def read_novelty_gold(path: str) -> dict:
    """A novelty gold file (``dedup eval --novelty``); raises BadInput when it cannot be scored against."""
    fix = 'a JSON object {"footers": [...], "articles": {id: {"story", "unique": [...], "n_unique"}}}'
    try:
        with open(path, "rb") as fh:
            gold = json.load(fh)
    except OSError as exc:
        raise BadInput(path, f"cannot read it: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise BadInput(path, f"is not JSON: {exc}", fix) from None
    articles = gold.get("articles") if isinstance(gold, dict) else None
    if not isinstance(articles, dict) or not all(
        isinstance(a, dict) and {"story", "unique", "n_unique"} <= a.keys() for a in articles.values()
    ):
        raise BadInput(path, "is not a novelty gold file", fix)
    return gold


def novelty_scores(gold: dict, stories: Iterable[Story]) -> dict:
    """Score ranked stories against a novelty gold file (``{"footers", "articles"}``).

    - precision: share of the sentences reported as unique, over the gold
      articles, whose word set overlaps a gold unique sentence *of the same
      article* by at least 0.6 Jaccard;
    - recall: share of gold unique sentences matched by a reported one of
      their article;
    - richest_first: share of gold stories whose variant with the most gold
      unique sentences (strictly more than any other) is ranked first in its
      predicted story;
    - footer_reports: reported sentences that are a footer's words (at least
      0.6 of their words in one footer), and the share of gold articles with any.

    ``stories_intact`` counts gold stories whose articles all landed in one
    predicted story with nothing else: only there do the gold answers hold
    exactly, so a low count explains low figures.
    """
    articles: dict[str, dict] = gold["articles"]
    footers = [word_set(f) for f in gold.get("footers", [])]
    placed: dict[str, tuple[str, int, list[str], int]] = {}  # id -> (story, rank, unique sentences, story size)
    for st in stories:
        for v in st.articles:
            placed[v.id] = (st.id, v.rank, v.unique_sentences, st.size)

    reported = matched_reported = gold_total = matched_gold = 0
    footer_sentences = 0
    footer_articles = 0
    for aid, g in articles.items():
        wanted = [word_set(s) for s in g["unique"]]
        got = [word_set(s) for s in placed.get(aid, ("", 0, [], 0))[2]]
        reported += len(got)
        gold_total += len(wanted)
        matched_reported += sum(1 for r in got if any(jaccard(r, w) >= SAME_SENTENCE_JACCARD for w in wanted))
        matched_gold += sum(1 for w in wanted if any(jaccard(r, w) >= SAME_SENTENCE_JACCARD for r in got))
        in_footer = sum(
            1 for r in got if r and any(len(r & f) >= SAME_SENTENCE_JACCARD * len(r) for f in footers)
        )
        footer_sentences += in_footer
        footer_articles += bool(in_footer)

    by_story: dict[str, list[str]] = defaultdict(list)
    for aid, g in articles.items():
        by_story[g["story"]].append(aid)
    richest = first = intact = 0
    for members in by_story.values():
        counts = sorted((articles[a]["n_unique"] for a in members), reverse=True)
        homes = {placed[a][0] if a in placed else None for a in members}
        if None not in homes and len(homes) == 1 and placed[members[0]][3] == len(members):
            intact += 1
        if len(counts) > 1 and counts[0] == counts[1]:
            continue  # no single richest variant
        richest += 1
        top = max(members, key=lambda a: articles[a]["n_unique"])
        first += top in placed and placed[top][1] == 1
    return {
        "unique_precision": round(matched_reported / reported, 4) if reported else 1.0,
        "unique_recall": round(matched_gold / gold_total, 4) if gold_total else 1.0,
        "reported_sentences": reported,
        "gold_sentences": gold_total,
        "richest_first": round(first / richest, 4) if richest else 1.0,
        "stories": len(by_story),
        "stories_intact": intact,
        "footer_reports": footer_sentences,
        "articles_with_footer_reported": round(footer_articles / len(articles), 4) if articles else 0.0,
    }


__all__ = ["scores", "evaluate", "pair_report", "pair_counts", "bcubed_f1", "novelty_scores", "read_novelty_gold",
           "word_set", "jaccard"]
