"""Evaluation metrics, checked against scikit-learn's implementations."""

from hypothesis import given, strategies as st
from sklearn.metrics import adjusted_rand_score
from sklearn.metrics.cluster import pair_confusion_matrix

from dedup.evaluate import evaluate, pair_counts, scores

labels = st.lists(st.integers(0, 5), min_size=2, max_size=40)


@given(labels, st.randoms(use_true_random=False))
def test_pair_counts_match_sklearn_pair_confusion_matrix(gold, rnd):
    pred = [rnd.randint(0, 4) for _ in gold]
    tp, predicted, true = pair_counts(gold, pred)
    m = pair_confusion_matrix(gold, pred)  # counts ordered pairs
    assert tp * 2 == m[1, 1]
    assert predicted * 2 == m[1, 1] + m[0, 1]
    assert true * 2 == m[1, 1] + m[1, 0]


@given(labels, st.randoms(use_true_random=False))
def test_ari_is_sklearns(gold, rnd):
    pred = [rnd.randint(0, 4) for _ in gold]
    assert abs(scores(gold, pred)["ari"] - round(adjusted_rand_score(gold, pred), 4)) < 1e-9


def test_perfect_and_split_clusterings():
    assert scores(["a", "a", "b"], [1, 1, 2])["pairwise_f1"] == 1.0
    s = scores(["a", "a", "a", "a"], [1, 1, 2, 2])
    assert s["pairwise_precision"] == 1.0 and s["pairwise_recall"] == round(2 / 6, 4)


def test_unlabelled_articles_are_not_scored_but_foreign_merges_are_counted():
    labels = {"a": "g1", "b": "g1", "x": None}
    r = evaluate(labels, {"a": "s", "b": "s", "x": "s"})
    assert r["articles"] == 2 and r["pairwise_f1"] == 1.0 and r["foreign_merges"] == 2


def test_property_tests_run_without_a_wall_clock_deadline():
    """A loaded machine must not fail a property test for being slow (profile loaded in conftest.py)."""
    from hypothesis import HealthCheck, settings

    assert settings().deadline is None and HealthCheck.too_slow in settings().suppress_health_check


def test_nothing_labelled_is_an_error_not_a_perfect_score():
    import pytest

    with pytest.raises(ValueError, match="cluster"):
        evaluate({"a": None, "b": None}, {"a": "s", "b": "s"})
