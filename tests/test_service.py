"""The core service: one entry point for every front end, clear errors for bad input."""

import pytest

from dedup import Article, BadInput, Deduper, Settings
from dedup.readers import read_paths

from .conftest import SEEDS


def test_empty_or_wordless_text_is_rejected_with_the_item_named():
    dd = Deduper()
    with pytest.raises(BadInput, match="feed.jsonl:3.*empty text"):
        dd.add(Article(id="x", text=" -- !! ", origin="feed.jsonl:3"))


def test_missing_id_and_huge_bodies_are_rejected():
    dd = Deduper(Settings(max_chars=1000))
    with pytest.raises(BadInput, match="missing id"):
        dd.add(Article(id="", text="Some words here."))
    with pytest.raises(BadInput, match="over the limit"):
        dd.add(Article(id="big", text="word " * 1000))


def test_html_bodies_are_clustered_as_text():
    dd = Deduper()
    a = dd.add(Article(id="h", text="<p>Floods closed the <b>M62</b> near Leeds.</p><script>x()</script>"))
    b = dd.add(Article(id="t", text="Floods closed the M62 near Leeds."))
    assert a.story == b.story


def test_add_many_reports_errors_and_goes_on():
    dd = Deduper()
    outs = list(dd.add_many([Article(id="a", text="Snow in Kent."), BadInput("f:2", "malformed JSON"),
                             Article(id="b", text="")]))
    assert [o.assignment is not None for o in outs] == [True, False, False]
    assert len(dd.index) == 1


def test_stories_are_listed_most_recent_first_with_rankings():
    dd = Deduper()
    dd.add(Article(id="a", text="Snow closed schools in Kent on Monday morning."))
    dd.add(Article(id="b", text="The central bank raised interest rates by a quarter point."))
    assert [s.id for s in dd.stories()] == ["b", "a"]
    assert dd.story("nope") is None


def test_jobs_in_worker_processes_give_the_same_outcomes_as_one_process(seed_paths):
    """Normalizing and signing in a process pool changes nothing: same assignments, errors in place, same records,
    every part of each signature (the outlet-template test reads the words and the headline length), the same
    names (they propose event candidates) and the same events."""
    import itertools

    import numpy as np

    from dedup.readers import read_paths
    from .conftest import data_file

    items = list(read_paths(seed_paths)) + list(itertools.islice(read_paths([str(data_file("meter-dev.jsonl"))]), 150))
    items.insert(3, BadInput("feed.jsonl:9", "malformed JSON"))
    items.insert(7, Article(id="wordless", text=" -- !! "))
    runs = []
    for jobs in (1, 2):
        dd = Deduper(Settings(jobs=jobs))
        outs = list(dd.add_many(items))
        runs.append((dd, [(o.where, o.assignment and (o.assignment.story, o.assignment.action), str(o.error)) for o in outs]))
    (one, got1), (two, got2) = runs
    assert got1 == got2 and sum(o[2] != "None" for o in got1) == 2
    ids = [a.id for a in items if isinstance(a, Article) and a.id != "wordless"]
    for a, b in zip(one.index.entries(ids).values(), two.index.entries(ids).values()):
        assert (a.id, a.title, a.text, a.published, a.sentence_hashes) == (b.id, b.title, b.text, b.published, b.sentence_hashes)
        assert a.key_names == b.key_names and a.key_names is not None
        for part in ("minhash", "term_ids", "term_weights", "term_levels", "shingles", "words"):
            assert np.array_equal(getattr(a.signature, part), getattr(b.signature, part)), part
        assert (a.signature.day, a.signature.lead, a.signature.source_crc) == (b.signature.day, b.signature.lead,
                                                                               b.signature.source_crc)
    stories = set(one.stories_of(ids).values())
    assert {s: one.event_of(s) for s in stories} == {s: two.event_of(s) for s in stories}


def test_a_setting_of_the_shared_index_is_refused_in_process():
    """--retain-days, --redis-mirror and the other Redis settings would do nothing in process: refused, named."""
    with pytest.raises(ValueError, match="--retain-days.*shared"):
        Deduper(Settings(retain_days=3))
    Deduper(Settings(retain_days=0)).close()  # the default is no request


def test_events_are_kept_as_articles_arrive_and_read_whole():
    """002 and 003 report one meeting in stories of their own; 003's links join 002's event."""
    seeds = {a.id[:3]: a for a in read_paths([str(SEEDS)])}
    dd = Deduper()
    (first,) = dd.add_many([seeds["002"]], report_events=True)
    assert (first.event, first.event_merged) == (first.assignment.story, [])
    (second,) = dd.add_many([seeds["003"]], report_events=True)
    stories = sorted([first.assignment.story, second.assignment.story])
    assert second.event == stories[0] and second.event_merged == stories[1:]
    assert dd.event_of(second.assignment.story) == (stories[0], stories)
    assert dd.events() == {s: stories[0] for s in stories}
    assert dd.event_of("no such story") == ("no such story", [])


def test_with_events_off_ingest_stores_no_links_and_events_are_grouped_when_read():
    on, off = Deduper(), Deduper(Settings(events=False))
    for dd in (on, off):
        outcomes = list(dd.add_many(read_paths([str(SEEDS)]), report_events=True))
    assert {o.event for o in outcomes} == {""}
    assert off.index.event_links([o.assignment.article_id for o in outcomes]) == {}
    assert off.events() == on.events()
    assert off.event_of("002_eeafeac8742d6ff6") == on.event_of("002_eeafeac8742d6ff6")
