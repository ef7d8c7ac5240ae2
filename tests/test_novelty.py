"""Novelty ranking: which variant adds what, on the seed rewrites."""

from dedup import Deduper
from dedup.novelty import rank_story
from dedup.readers import read_paths
from dedup.settings import Settings

from .conftest import SEEDS


def seed_story():
    dd = Deduper()
    for a in read_paths([str(SEEDS)]):
        dd.add(a)
    sid = dd.story_of("000_e9c91ff9978c02d9")
    return dd.story(sid)


def test_000_adds_most_and_each_variant_lists_its_own_additions():
    story = seed_story()
    first, second = story.articles
    assert (first.id, second.id) == ("000_e9c91ff9978c02d9", "001_4d4ee5db411d55be")
    assert first.rank == 1 and first.unique_information > second.unique_information
    mine = " ".join(first.unique_sentences)
    theirs = " ".join(second.unique_sentences)
    assert "Turkey" in mine and "NATO-EU cooperation" in mine
    assert "little appetite" in theirs and "big problem" in theirs
    assert "Turkey" not in theirs and "appetite" not in mine


def test_unique_sentences_are_quoted_as_they_appear_in_the_article():
    story = seed_story()
    texts = {a.id: open(p).read() for a, p in ((a, SEEDS / f"{a.id}.txt") for a in story.articles)}
    for v in story.articles:
        for s in v.unique_sentences:
            assert s in texts[v.id]


def test_boilerplate_is_never_unique():
    story = seed_story()
    everything = " ".join(s for v in story.articles for s in v.unique_sentences)
    for junk in ("Copyright", "archived article", "Trending Stories", "AP Photo"):
        assert junk not in everything


def test_a_line_recurring_in_other_stories_is_not_counted():
    from dedup.records import Entry
    from dedup.text import line_hash
    import numpy as np
    from dedup.records import Signature
    sig = Signature(np.zeros(32, np.uint32), np.zeros(0, np.uint32), np.zeros(0, np.float32), np.zeros(0, np.uint32), None)
    promo = "Download our free app for the latest local news alerts tonight"
    a = Entry("a", "", "Ministers agreed the new flood defence budget for Yorkshire.\n" + promo, "", "", "", sig, [])
    b = Entry("b", "", "Ministers agreed a flood budget.\n" + promo, "", "", "", sig, [])
    story = rank_story("a", [a, b], Settings(), counts={line_hash(promo): 9})
    assert all("Download" not in s for v in story.articles for s in v.unique_sentences)
    story = rank_story("a", [a, b], Settings(), counts={})
    assert story.articles[0].id == "a"


def test_outline_names_the_same_most_complete_variant_and_headline_as_ranking():
    """The story list uses the cheap outline; it must agree with the story page's ranking."""
    import itertools

    import numpy as np
    from sklearn.feature_extraction.text import TfidfVectorizer

    from dedup.novelty import _coverage, _select, outline_story
    from dedup.text import content_words

    from .conftest import data_file

    dd = Deduper()
    paths = [str(SEEDS), str(data_file("meter-dev.jsonl"))]
    list(dd.add_many(itertools.islice(read_paths(paths), 400)))
    multi = 0
    for sid in dd.index.story_ids():
        entries = list(dd.index.entries(dd.index.members(sid)).values())
        hashes = sorted({h for e in entries for h in e.sentence_hashes})
        counts = dict(zip(hashes, dd.index.sentence_counts(hashes)))
        ranked = dd.story(sid)
        out = outline_story(sid, entries, dd.settings, counts)
        best = next(v.id for v in ranked.articles if v.most_complete)
        assert (out.most_complete, out.headline, out.size, out.sources) == (
            best, ranked.headline, ranked.size, ranked.sources), sid
        assert (out.first_published, out.last_published) == (ranked.first_published, ranked.last_published)
        if len(entries) > 1:
            multi += 1
            # coverage equals the share of scikit-learn's fitted IDF mass (an independent oracle)
            variants = _select(sorted(entries, key=lambda e: e.id), dd.settings, counts)
            sents = [s for v in variants for s in v.sentences]
            vec = TfidfVectorizer(tokenizer=content_words, lowercase=False, token_pattern=None, sublinear_tf=True)
            vec.fit(sents)
            idf = dict(zip(vec.get_feature_names_out(), vec.idf_))
            total = sum(idf.values())
            want = [sum(idf[w] for w in {w for s in v.sentences for w in content_words(s)}) / total for v in variants]
            assert np.allclose(_coverage(variants), want), sid
    assert multi >= 10


# A story around one huge article: ranking must grow with the story's size, not its square.  The child
# process generates a 1.5-million-character article (under the default --max-chars) and three rewrites
# of parts of it, each with a sentence of its own, clusters them through Deduper and ranks the story.
# Peak memory is the child's peak resident set, which counts everything the process holds, scipy's and
# scikit-learn's C buffers included (tracemalloc sees only what Python's allocator hands out).  The child
# reports its own (RUSAGE_SELF): this process's RUSAGE_CHILDREN is the peak of every child it has waited
# for, other tests' included.
_HUGE_STORY = r"""
import itertools, json, random, resource, sys, time
from dedup import Deduper
from dedup.records import Article

OWN = json.loads(sys.argv[1])
rnd = random.Random(7)
vocab = ["".join(rnd.choices("abcdefghijklmnopqrstuvwxyz", k=rnd.randint(4, 10))) for _ in range(20000)]
cum = list(itertools.accumulate(1 / (r + 1) for r in range(len(vocab))))  # Zipf-like word frequencies
sentences, size = [], 0
while size < 1_500_000:
    s = " ".join(rnd.choices(vocab, cum_weights=cum, k=rnd.randint(8, 24))).capitalize() + "."
    sentences.append(s)
    size += len(s) + 1
text = "\n".join(" ".join(sentences[i : i + 4]) for i in range(0, len(sentences), 4))
start = time.perf_counter()
dd = Deduper()
dd.add(Article(id="huge", text=text, title="Huge"))
for k in range(3):
    part = sentences[k * 500 : k * 500 + 300]
    own = OWN[k]
    dd.add(Article(id=f"part{k}", text="\n".join(part + [own]), title=f"Part {k}"))
story = dd.story(dd.story_of("huge"))
seconds = time.perf_counter() - start
copied = {s for k in range(3) for s in sentences[k * 500 : k * 500 + 300]}
huge = next(v for v in story.articles if v.id == "huge")
json.dump({"seconds": seconds, "chars": len(text), "huge_unique": len(huge.unique_sentences),
           "copied_reported": len(copied & set(huge.unique_sentences)),
           "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,  # Linux reports kilobytes
           "unique": {v.id: v.unique_sentences for v in story.articles if v.id != "huge"}}, sys.stdout)
"""


_OWN = ["Harbour officials closed Dunmore pier after the storm.", "Firefighters rescued two climbers near Glencoe.",
        "Councillors approved the Riverside library budget."]


def test_a_huge_article_clusters_and_ranks_in_bounded_time_and_memory():
    import json
    import os
    import subprocess
    import sys

    env = dict(os.environ, PYTHONPATH=str(SEEDS.parent))
    out = subprocess.run([sys.executable, "-c", _HUGE_STORY, json.dumps(_OWN)], capture_output=True, text=True, env=env, check=True)
    result = json.loads(out.stdout)
    assert result["chars"] >= 1_500_000
    assert set(result["unique"]) == {"part0", "part1", "part2"}  # one story with the huge article
    for k in range(3):  # each rewrite's own sentence is found, and only it
        assert result["unique"][f"part{k}"] == [_OWN[k]]
    # the huge article adds thousands of sentences, but none of those the rewrites copied
    assert result["huge_unique"] > 10_000 and result["copied_reported"] == 0
    assert result["seconds"] < 60
    assert result["peak_mb"] < 1024


def _entry(id_, text, title=""):
    """An index entry for ranking alone: ranking reads the text, never the signature."""
    import numpy as np

    from dedup.records import Entry, Signature
    sig = Signature(np.zeros(32, np.uint32), np.zeros(0, np.uint32), np.zeros(0, np.float32), np.zeros(0, np.uint32), None)
    return Entry(id_, title, text, "", "", "", sig, [])


_CORE = ("A former salesman was jailed for life for the murders of a dog breeder and her mother.\n"
         "Kevin Cotterell pleaded guilty at Norwich Crown Court to stabbing both women at their cottage.\n")


def test_the_headline_is_the_title_of_the_most_complete_variant_that_has_one():
    main = _entry("pa-1", _CORE + "Detectives still do not know why he killed the two women.", "SALESMAN GETS LIFE")
    sidebar = _entry("pa-2", _CORE[:90], "POLICE TRY TO UNRAVEL KILLER'S MISSING YEARS")
    paper = _entry("paper", _CORE + "Detectives still do not know why he killed the two women. Neighbours wept outside.")
    story = rank_story("s", [main, sidebar, paper], Settings())
    # the newspaper covers most but has no headline; the sidebar has one but covers less
    assert next(v.id for v in story.articles if v.most_complete) == "paper"
    assert story.headline == "SALESMAN GETS LIFE"


def test_a_wire_headline_in_capitals_is_found_where_a_feed_ran_it_into_the_lede():
    joined = "(with pix) SALESMAN GETS LIFE FOR KILLING DOG BREEDER By Brian Farmer, PA News " + _CORE
    assert rank_story("s", [_entry("a", joined)], Settings()).headline == "SALESMAN GETS LIFE FOR KILLING DOG BREEDER"
    on_its_own = "(Advisory: not for publication).\n\nSALESMAN GETS LIFE\n\nBy Brian Farmer, PA News\n\n" + _CORE
    assert rank_story("s", [_entry("a", on_its_own)], Settings()).headline == "SALESMAN GETS LIFE"


def test_a_first_line_is_a_headline_only_when_shaped_like_one():
    from dedup.novelty import _first_line_headline

    def headline(text):
        return _first_line_headline(_entry("a", text))

    assert headline("Who will foot the bill for care now?\n\n" + _CORE) == "Who will foot the bill for care now?"
    assert headline("(with pix)\n\nPc FOUND GUILTY\n\nBy Helen William, PA News\n\n" + _CORE) == "Pc FOUND GUILTY"
    # a sentence wrapped at the line's end, a list's opening, a one-sentence lede: not headlines
    assert headline("A WOMAN was jailed for seven years yesterday\n\nfor torturing her husband.\n" + _CORE) == ""
    assert headline("Pinochet: the alleged victims include:\n\n" + _CORE) == ""
    assert headline(_CORE) == ""


def test_a_title_field_wins_over_a_more_complete_variant_whose_first_line_only_looks_like_a_headline():
    paper = _entry("paper", "Who will pay now?\n\n" + _CORE + "Detectives still do not know why he killed them.")
    wire = _entry("wire", _CORE, "SALESMAN GETS LIFE")
    assert rank_story("s", [paper, wire], Settings()).headline == "SALESMAN GETS LIFE"


def test_without_any_headline_the_lede_stands_in_cut_to_a_headlines_length():
    lede = ("NEIL HAMILTON dropped one of his main claims for damages against Mohamed Al Fayed yesterday after "
            "just 22 minutes of cross-examination by the defence in the High Court in London.")
    headline = rank_story("s", [_entry("a", lede)], Settings()).headline
    assert headline.startswith("NEIL HAMILTON dropped one of his main claims") and headline.endswith("\u2026")
    assert len(headline.split()) <= 15


def test_short_quoted_statements_count_but_fragments_do_not():
    a = _entry("a", _CORE + "He said: ``The operation was not for anorexia.'' ``No.''")
    b = _entry("b", "World News\nJens Stoltenberg\n" + _CORE + "The trial was adjourned until tomorrow.\n"
               "24 January 2020")
    story = rank_story("s", [a, b], Settings())
    unique = {v.id: v.unique_sentences for v in story.articles}
    assert unique["a"] == ["He said: ``The operation was not for anorexia.''"]
    assert unique["b"] == ["The trial was adjourned until tomorrow."]  # not labels, captions or dates


def test_a_variant_with_more_new_sentences_ranks_first_even_when_they_are_shorter():
    many = _entry("many", _CORE + "``I felt humiliated.'' ``Officers laughed at me.'' ``My sergeant ignored complaints.'' "
                  "``I left the quiz early.''")
    long_ = _entry("long", _CORE + "The court heard that the defendant, who had worked for the kitchenware firm for "
                   "eleven years and travelled across Norfolk, Suffolk and Cambridgeshire selling brushes and "
                   "cleaning products door to door, had previous convictions for two burglaries in 1983.")
    story = rank_story("s", [long_, many], Settings())
    assert [v.id for v in story.articles] == ["many", "long"]
    assert len(story.articles[0].unique_sentences) == 4


from hypothesis import given, settings as hsettings, strategies as st  # noqa: E402


@hsettings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 6), min_size=1, max_size=5), st.integers(0, 2**32 - 1), st.sampled_from([1, 7, 10**9]))
def test_nearest_sentence_of_another_variant_is_the_dense_answer_whatever_the_blocks(sizes, seed, pairs):
    """Blocked sparse products (and the one-product path for small stories) give the dense row maxima."""
    import numpy as np
    import scipy.sparse as sp

    import dedup.novelty as N

    rng = np.random.default_rng(seed)
    n = sum(sizes)
    rows = rng.random((n, 8)) * (rng.random((n, 8)) < 0.3)  # sparse rows, some empty, as TF-IDF gives
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    X = sp.csr_matrix(np.divide(rows, norms, out=np.zeros_like(rows), where=norms > 0))
    bounds, start = [], 0
    for k in sizes:
        bounds.append((start, start + k))
        start += k
    owner = np.repeat(np.arange(len(sizes)), sizes)
    dense = X.toarray() @ X.toarray().T
    dense[owner[:, None] == owner[None, :]] = 0.0
    want = dense.max(axis=1) if n else np.zeros(0)
    old = N._PAIRS_PER_BLOCK
    N._PAIRS_PER_BLOCK = pairs
    try:
        got = N._nearest_other(X, bounds)
    finally:
        N._PAIRS_PER_BLOCK = old
    assert np.allclose(got, want)


def test_aligning_one_variant_with_several_gives_each_pair_alone():
    """The story page's similarity column fits the story's model once; each variant's figure is the
    one the compare page shows for that pair."""
    from dedup.novelty import align_variants, align_with

    dd = Deduper()
    for a in read_paths([str(SEEDS)]):
        dd.add(a)
    entries = list(dd.articles(dd.members(dd.story_of("000_e9c91ff9978c02d9"))).values())
    anchor, other = sorted(e.id for e in entries)
    together = align_with(entries, anchor, [other, anchor], dd.settings)
    assert together[other] == align_variants(entries, anchor, other, dd.settings)
    assert together[anchor][1] == 1.0 and 0.0 < together[other][1] < 1.0
