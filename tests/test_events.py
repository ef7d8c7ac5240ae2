"""Events: stories of one news event grouped by topical evidence, over stories already made."""

import dataclasses
import datetime as dt
import random
from unittest import mock

from hypothesis import given, settings, strategies as st

from dedup import Deduper
from dedup.events import encode_key, event_day, group_events, opening_day, relink_after_delete
from dedup.readers import read_paths
from dedup.records import Article
from dedup.settings import Settings

from .conftest import SEEDS, data_file


def ordinal(y: int, m: int, d: int) -> int:
    return dt.date(y, m, d).toordinal()


def test_the_date_in_a_texts_opening_places_it_in_time():
    assert opening_day("NATO chief\n\n24 January 2020\n\nBrussels ...") == ordinal(2020, 1, 24)
    assert opening_day("Brussels, Tuesday, Jan. 21, 2020. Stoltenberg said") == ordinal(2020, 1, 21)
    assert opening_day("Friday 14/02/2020\nBRUSSELS") == ordinal(2020, 2, 14)  # day first
    assert opening_day("02/14/2020") == ordinal(2020, 2, 14)  # only month first makes a date
    assert opening_day("February 30, 2020 was no day; March 2, 2020 was") == ordinal(2020, 3, 2)
    assert opening_day("filed 2019-11-05 by the desk") == ordinal(2019, 11, 5)
    assert opening_day("NATO's secretary-general on Tuesday backed a bigger mission") is None
    assert opening_day("x" * 500 + " 24 January 2020") is None  # past the opening: a date the story mentions


def test_a_published_day_wins_over_a_date_in_the_text():
    dd = Deduper()
    entry = dd.prepare(next(iter(read_paths([str(SEEDS / "000_e9c91ff9978c02d9.txt")]))))
    assert event_day(entry) == ordinal(2020, 1, 24)
    published = dataclasses.replace(entry, signature=dataclasses.replace(entry.signature, day=ordinal(2021, 5, 1)))
    assert event_day(published) == ordinal(2021, 5, 1)


def seed_run() -> tuple[Deduper, dict[str, str]]:
    dd = Deduper()
    outcomes = list(dd.add_many(read_paths([str(SEEDS)])))
    return dd, dd.stories_of([o.assignment.article_id for o in outcomes])


def test_seed_events_two_wires_on_one_meeting_join_and_the_2018_story_stays_apart():
    dd, story_of = seed_run()
    event = dd.events()
    groups: dict[str, set[str]] = {}
    for a, s in story_of.items():
        groups.setdefault(event[s], set()).add(a[:3])
    assert sorted(sorted(g) for g in groups.values()) == [["000", "001"], ["002", "003"], ["004"]]
    # an event is named after its smallest story id, and every story of an event is in it
    assert event[story_of["002_eeafeac8742d6ff6"]] == "002_eeafeac8742d6ff6"


def test_an_undated_article_joins_no_dated_event_by_topic_alone():
    """004 (no date anywhere in its opening) and 003 (dated) report the same subject two years apart."""
    dd, story_of = seed_run()
    entries = dd.articles(story_of)
    e004, e003 = entries["004_d2e7bef4c6cefe34"], entries["003_31e74b4a56cebf45"]
    assert event_day(e004) is None and event_day(e003) is not None
    pair = {a: story_of[a] for a in (e004.id, e003.id)}
    assert len(set(group_events([e004, e003], pair, dd.settings).values())) == 2
    # without its date line 003 is undated too, and topic alone then joins the two
    undated = dataclasses.replace(e003, text=e003.text.replace("February 14, 2020", ""))
    assert event_day(undated) is None
    assert len(set(group_events([e004, undated], pair, dd.settings).values())) == 1


@settings(max_examples=10)
@given(st.randoms(use_true_random=False))
def test_events_do_not_depend_on_the_order_articles_are_read(rnd: random.Random):
    dd, story_of = seed_run()
    entries = list(dd.articles(story_of).values())
    base = group_events(entries, story_of, dd.settings)
    rnd.shuffle(entries)
    assert group_events(entries, story_of, dd.settings) == base


def test_meter_dev_events_hold_pa_copy_continuations_and_independent_reports():
    """METER's labels are the event level: F1 and ARI at least 0.96 there (stories alone reach ~0.93)."""
    from dedup.evaluate import evaluate
    from dedup.readers import read_labels

    path = data_file("meter-dev.jsonl")
    dd = Deduper()
    outcomes = list(dd.add_many(read_paths([str(path)])))
    story_of = dd.stories_of([o.assignment.article_id for o in outcomes])
    event = dd.events()
    scores = evaluate(read_labels(str(path)), {a: event[s] for a, s in story_of.items()})
    assert scores["pairwise_f1"] >= 0.96 and scores["ari"] >= 0.96, scores
    assert evaluate(read_labels(str(path)), story_of)["pairwise_precision"] >= 0.98


# -- events kept as articles arrive -----------------------------------------------

NAMES = ["Zorbanek", "Kwelliston", "Maravitch", "Oduyanne", "Brannockville", "Thessalka", "Quillfeather", "Ostravin"]
WORDS = ["minister", "talks", "fishing", "quota", "harbour", "vote", "council", "strike", "budget", "court", "river",
         "festival", "election", "bridge", "museum", "storm", "farmers", "police", "hospital", "school", "airport",
         "railway", "drought", "mayor", "treaty", "border", "tariff", "vaccine", "stadium", "protest"]


def synthetic(rnd: random.Random, aid: str) -> Article:
    """A short report on a few of a small pool of rare names, its words in an order of its own: such reports
    pair up as events, stories or neither, depending on what they happen to share."""
    names, words = rnd.sample(NAMES, rnd.randint(1, 3)), rnd.sample(WORDS, 8)
    sentences = []
    for _ in range(rnd.randint(1, 3)):
        said = rnd.sample(words, 5) + [rnd.choice(names) for _ in range(2)]
        rnd.shuffle(said)
        sentences.append("The " + " ".join(said) + ".")
    day = rnd.choice([None, 1, 1, 2, 5])
    published = None if day is None else dt.datetime(2024, 3, day, tzinfo=dt.timezone.utc)
    return Article(id=aid, title=f"{words[0].title()} {words[1]} for {names[0]}", text=" ".join(sentences),
                   published=published)


def bridged(rnd: random.Random, aid: str) -> list[Article]:
    """Two reports on the same names in words of their own (``aid``-a, ``aid``-c) and a longer one that
    copies both (``aid``-b): one story while the copy holds it together, two when it goes."""
    names, words = rnd.sample(NAMES, 3), rnd.sample(WORDS, 12)

    def report(vocabulary: list[str]) -> str:
        said = [" ".join(["The"] + rnd.sample(vocabulary, 4) + rnd.sample(names, 2)) + "." for _ in range(3)]
        return " ".join(said)

    a, c = report(words[:6]), report(words[6:])
    published = dt.datetime(2024, 3, 1, tzinfo=dt.timezone.utc)
    return [Article(id=f"{aid}-a", text=a, published=published), Article(id=f"{aid}-b", text=a + " " + c,
                                                                          published=published),
            Article(id=f"{aid}-c", text=c, published=published)]


SEED_ARTICLES = list(read_paths([str(SEEDS)]))


def batch_view(dd: Deduper) -> dict[str, str]:
    """The reference: events grouped over every stored article at once."""
    story_ids = dd.index.story_ids()
    story_of = {a: s for s, ids in dd.members_many(story_ids).items() for a in ids}
    return group_events(list(dd.articles(story_of).values()), story_of, dd.settings)


@settings(max_examples=25)
@given(st.integers(0, 2**32))
def test_events_kept_as_articles_arrive_equal_the_batch_view_whatever_the_order(seed: int):
    """Arrivals in any order, alone or in batches, with deletes and new versions in between; a cap of 3
    holders per word makes words stop and start proposing pairs as articles come and go."""
    rnd = random.Random(seed)
    articles = SEED_ARTICLES + [synthetic(rnd, f"s{n:02d}") for n in range(10)] + bridged(rnd, "t1") + bridged(rnd, "t2")
    rnd.shuffle(articles)
    dd = Deduper()
    with mock.patch("dedup.events.MAX_KEY_ARTICLES", 3):
        while articles:
            take = rnd.randint(1, 6)
            batch, articles = articles[:take], articles[take:]
            if take == 1:
                dd.add(batch[0])
            else:
                list(dd.add_many(batch))
            stored = sorted(a for ids in dd.members_many(dd.index.story_ids()).values() for a in ids)
            if stored and rnd.random() < 0.5:
                bridges = [a for a in stored if a.endswith("-b")]
                gone = rnd.choice(bridges if bridges and rnd.random() < 0.5 else stored)
                dd.delete(gone)
                if rnd.random() < 0.5:  # it comes back, rewritten
                    articles.insert(rnd.randint(0, len(articles)), synthetic(rnd, gone))
        reference = batch_view(dd)
        assert dd.events() == reference
        for story, event in reference.items():
            assert dd.event_of(story) == (event, sorted(s for s, e in reference.items() if e == event))


def test_reports_a_copy_held_in_one_story_are_linked_when_the_copy_goes():
    """Pairs of one story are never decided; a re-split that parts them decides them."""
    a, b, c = bridged(random.Random(1), "t")
    dd = Deduper()
    for article in (b, a, c):
        dd.add(article)
    assert len(set(dd.stories_of(["t-a", "t-b", "t-c"]).values())) == 1
    dd.delete("t-b")
    story_of = dd.stories_of(["t-a", "t-c"])
    assert len(set(story_of.values())) == 2
    assert len(set(dd.events().values())) == 1 and dd.events() == batch_view(dd)


def test_a_word_back_at_the_cap_decides_the_pairs_of_its_holders():
    """A word held by more than MAX_KEY_ARTICLES articles proposes no pairs; when a delete brings it back
    to the cap, every pair of its holders is decided (here the word is the only key the articles share)."""
    a, _, c = bridged(random.Random(1), "t")
    far = dt.datetime(2024, 6, 1, tzinfo=dt.timezone.utc)
    fillers = [Article(id=f"f{n}", text=f"The {WORDS[20 + n]} {WORDS[24 + n]} report.", published=far)
               for n in range(3)]
    dd = Deduper(Settings(events=False))  # keys and links written by hand below
    list(dd.add_many(fillers + [a, c]))
    word = encode_key(("word", 7))
    dd.index.add_event_keys({i: [word] for i in ("f0", "f1", "f2", "t-a", "t-c")})
    with mock.patch("dedup.events.MAX_KEY_ARTICLES", 3):
        dd.index.delete("f0")
        assert relink_after_delete(dd.index, [[word]], dd.settings) == []  # four holders: over the cap
        dd.index.delete("f1")
        assert relink_after_delete(dd.index, [[word]], dd.settings) == [("t-a", "t-c")]  # the far-off report is not
    assert dd.index.event_links(["t-a", "t-c", "f2"]) == {"t-a": ["t-c"], "t-c": ["t-a"]}


def test_retention_decides_the_pairs_of_a_word_its_deletes_bring_back_under_the_cap(redis_url):
    """Retention on the shared index deletes a pass's articles in batches: a word that held more than
    MAX_KEY_ARTICLES articles before the pass and no more after it proposes its holders' pairs again."""
    a, _, c = bridged(random.Random(1), "t")
    old = dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)  # two months before a and c
    fillers = [Article(id=f"f{n}", text=f"The {WORDS[20 + n]} {WORDS[24 + n]} report.", published=old)
               for n in range(2)]
    word = encode_key(("word", 7))
    writer = Deduper(Settings(events=False), url=redis_url, namespace="retention-relink")  # keys by hand below
    list(writer.add_many(fillers + [a, c]))
    writer.index.add_event_keys({i: [word] for i in ("f0", "f1", "t-a", "t-c")})
    keeper = Deduper(Settings(retain_days=30), url=redis_url, namespace="retention-relink")
    try:
        with mock.patch("dedup.events.MAX_KEY_ARTICLES", 3):
            assert sorted(keeper.index.expire()) == ["f0", "f1"]  # four holders before, two after
        assert keeper.index.event_links(["t-a", "t-c"]) == {"t-a": ["t-c"], "t-c": ["t-a"]}
    finally:
        keeper.index.drop()
