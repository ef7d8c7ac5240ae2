"""Input parsing: every bad item is named, nothing is dropped silently."""

import io
import json

from dedup.readers import read_bytes, read_paths
from dedup.records import Article, BadInput


def items(data: bytes, name="feed.jsonl", suffix=".jsonl"):
    return list(read_bytes(data, name, suffix))


def test_jsonl_with_our_fields_and_ninjs():
    data = (json.dumps({"id": "a1", "title": "T", "text": "Body", "source": "AP", "published": "2020-01-21T10:00:00Z"})
            + "\n" + json.dumps({"uri": "urn:x", "headline": "H", "body_text": "B", "versioncreated": "2020-01-22"}))
    a, b = items(data.encode())
    assert (a.id, a.title, a.source, a.day is not None) == ("a1", "T", "AP", True)
    assert (b.id, b.title, b.text) == ("urn:x", "H", "B")


def test_bad_lines_are_named_and_the_batch_goes_on():
    data = b'{"id": "ok", "text": "fine"}\n{not json\n{"text": "no id"}\n{"id": "e", "text": "  "}\n{"id": "ok2", "body": "x"}\n'
    out = items(data)
    assert [type(o).__name__ for o in out] == ["Article", "BadInput", "BadInput", "BadInput", "Article"]
    assert "feed.jsonl:2" in str(out[1]) and "malformed JSON" in str(out[1])
    assert "feed.jsonl:3" in str(out[2]) and "missing id" in str(out[2])
    assert "empty text" in str(out[3])


def test_non_utf8_is_decoded_with_a_warning():
    (a,) = items(b'{"id": "x", "text": "caf\xe9 society"}', "f.jsonl")
    assert isinstance(a, Article) and "caf" in a.text and a.warnings and "not valid UTF-8" in a.warnings[0]


def test_text_files_directories_and_stdin(tmp_path):
    (tmp_path / "one.txt").write_text("A story about a flood.")
    (tmp_path / "two.json").write_text(json.dumps([{"id": "j1", "text": "x"}, {"id": "j2", "text": "y"}]))
    (tmp_path / "empty.txt").write_text("")
    out = list(read_paths([str(tmp_path), "-"], stdin=io.BytesIO(b'{"id": "s", "text": "from stdin"}')))
    ids = [o.id for o in out if isinstance(o, Article)]
    assert ids == ["one", "j1", "j2", "s"]
    assert any(isinstance(o, BadInput) and "empty.txt" in str(o) for o in out)


def test_unreadable_path_is_an_error_not_a_crash(tmp_path):
    (out,) = list(read_paths([str(tmp_path / "nope.jsonl")]))
    assert isinstance(out, BadInput) and "cannot read" in str(out)


def test_unpaired_surrogates_from_json_escapes_are_replaced_with_a_warning():
    """'\\ud800' is valid JSON but not text: it must not fail later in hashing, storage or output."""
    from dedup import Deduper

    data = b'{"id": "a1", "title": "T \\ud800", "text": "Tony Blair met firefighters \\udc00 over pay in London."}\n'
    (art,) = list(read_bytes(data, "feed.jsonl"))
    assert isinstance(art, Article) and "\ud800" not in art.title and "\udc00" not in art.text
    assert "\ufffd" in art.text and any("feed.jsonl:1: text" in w for w in art.warnings)
    assert Deduper().add(art).action == "new"
    art.text.encode("utf-8")
