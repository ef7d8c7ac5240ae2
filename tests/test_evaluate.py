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


# Novelty scoring: reported unique sentences against a gold file's.

from dedup.evaluate import jaccard, novelty_scores, word_set  # noqa: E402
from dedup.records import RankedVariant, Story  # noqa: E402


def _story(sid, ranked):
    """A ranked story from (id, unique sentences) in rank order."""
    arts = [RankedVariant(i, r, "", "", "", sents, float(len(sents)), 0.5) for r, (i, sents) in enumerate(ranked, 1)]
    return Story(sid, arts, "", [], "", "")


_GOLD = {
    "footers": ["Read more local news at the Echo website. Updated every hour."],
    "articles": {
        "s-v0": {"story": "s", "unique": ["The judge adjourned the case until Monday.", "He denied all charges."], "n_unique": 2},
        "s-v1": {"story": "s", "unique": ["``I never touched the money,'' he said."], "n_unique": 1},
    },
}


def test_sentences_match_on_words_whatever_the_quotes_case_and_punctuation():
    assert word_set("``I never touched the MONEY,'' he said.") == word_set('"I never touched the money", he said')
    assert jaccard(word_set("a b c d e"), word_set("a b c d f")) == 4 / 6


def test_a_perfect_ranking_scores_one_everywhere():
    stories = [_story("x", [("s-v0", _GOLD["articles"]["s-v0"]["unique"]), ("s-v1", _GOLD["articles"]["s-v1"]["unique"])])]
    r = novelty_scores(_GOLD, stories)
    assert (r["unique_precision"], r["unique_recall"], r["richest_first"]) == (1.0, 1.0, 1.0)
    assert r["footer_reports"] == 0 and r["stories_intact"] == 1


def test_a_missed_sentence_lowers_recall_a_footer_lowers_precision_and_is_counted():
    stories = [_story("x", [
        ("s-v1", ["I never touched the money, he said.", "Updated every hour."]),
        ("s-v0", ["The judge adjourned the case until Monday."]),
    ])]
    r = novelty_scores(_GOLD, stories)
    assert r["unique_recall"] == round(2 / 3, 4)  # "He denied all charges." was missed
    assert r["unique_precision"] == round(2 / 3, 4)  # the footer line is not a unique sentence
    assert r["footer_reports"] == 1 and r["articles_with_footer_reported"] == 0.5
    assert r["richest_first"] == 0.0  # s-v0 adds more but is ranked second


def test_a_glued_sentence_matches_neither_of_its_halves():
    glued = "The judge adjourned the case until Monday. He denied all charges and left the court in a taxi."
    r = novelty_scores(_GOLD, [_story("x", [("s-v0", [glued]), ("s-v1", [])])])
    assert r["unique_recall"] == 0.0 and r["unique_precision"] == 0.0


def test_a_story_split_over_two_predicted_stories_is_not_intact():
    r = novelty_scores(_GOLD, [_story("x", [("s-v0", [])]), _story("y", [("s-v1", [])])])
    assert r["stories_intact"] == 0


def test_eval_novelty_on_novelty_dev_reaches_the_bar():
    import json

    from click.testing import CliRunner

    from dedup.cli import cli

    from .conftest import data_file

    gold, articles = data_file("novelty-dev-gold.json"), data_file("novelty-dev.jsonl")
    out = CliRunner().invoke(cli, ["eval", "--novelty", str(gold), str(articles)])
    assert out.exit_code == 0, out.output
    r = json.loads(out.output)["novelty"]
    assert r["stories_intact"] == r["stories"] == 30
    assert r["unique_precision"] >= 0.9 and r["unique_recall"] >= 0.9
    assert r["richest_first"] >= 0.9
    assert r["footer_reports"] == 0


def test_a_file_that_is_not_a_novelty_gold_file_is_refused_with_what_it_should_hold(tmp_path):
    import json

    import pytest
    from click.testing import CliRunner

    from dedup.cli import cli
    from dedup.evaluate import read_novelty_gold
    from dedup.records import BadInput

    labels = tmp_path / "labels.json"
    labels.write_text(json.dumps({"a": "story-1"}))
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    for path in (labels, broken, tmp_path / "missing.json"):
        with pytest.raises(BadInput, match=str(path)):
            read_novelty_gold(str(path))
    articles = tmp_path / "articles.jsonl"
    articles.write_text(json.dumps({"id": "a", "text": "The minister resigned today."}) + "\n")
    out = CliRunner().invoke(cli, ["eval", "--novelty", str(labels), str(articles)])
    assert out.exit_code == 2 and "not a novelty gold file" in out.output
