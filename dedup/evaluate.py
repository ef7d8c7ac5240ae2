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

import math
from collections import Counter, defaultdict
from typing import Hashable, Iterable, Sequence

from sklearn.metrics import adjusted_rand_score

from .readers import read_pairs


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


__all__ = ["scores", "evaluate", "pair_report", "pair_counts", "bcubed_f1"]
