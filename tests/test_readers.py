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


def test_ids_of_text_files_are_their_paths_under_the_folder_given(tmp_path):
    """Two days' folders may hold files of one name: each keeps its own article."""
    (tmp_path / "mon").mkdir()
    (tmp_path / "tue").mkdir()
    (tmp_path / "mon" / "story.txt").write_text("Floods closed the M62 near Leeds on Monday.")
    (tmp_path / "tue" / "story.txt").write_text("Snow closed schools across Kent on Tuesday.")
    out = list(read_paths([str(tmp_path)]))
    assert [a.id for a in out] == ["mon/story", "tue/story"] and not any(a.warnings for a in out)
    (named,) = list(read_paths([str(tmp_path / "tue" / "story.txt")]))
    assert named.id == "story"


def test_an_id_repeated_in_a_batch_is_warned_about_with_both_places(tmp_path):
    feed = tmp_path / "feed.jsonl"
    feed.write_text('{"id": "a", "text": "first"}\n{"id": "b", "text": "other"}\n{"id": "a", "text": "second"}\n')
    first, _, second = list(read_paths([str(feed)]))
    assert not first.warnings
    (w,) = second.warnings
    assert f"{feed}:3" in w and f"{feed}:1" in w and "replaces" in w


def test_binary_files_are_bad_input_naming_the_file(tmp_path):
    elf = tmp_path / "ls.txt"
    elf.write_bytes(b"\x7fELF\x02\x01\x01" + b"\0" * 40 + b"GLIBC_2.2.5 text here")
    garbage = tmp_path / "noise.txt"
    garbage.write_bytes(bytes(range(128, 256)) * 4)
    for path in (elf, garbage):
        (out,) = list(read_paths([str(path)]))
        assert isinstance(out, BadInput) and out.where == str(path) and "binary" in out.reason


def test_a_few_latin1_bytes_in_text_are_still_text(tmp_path):
    f = tmp_path / "cafe.txt"
    f.write_bytes(b"The caf\xe9 owners in Leeds cleaned up after the floods on Monday morning.")
    (a,) = list(read_paths([str(f)]))
    assert isinstance(a, Article) and "not valid UTF-8" in a.warnings[0]


def test_directories_take_the_documented_extensions_and_name_what_they_skip(tmp_path):
    for name in ("a.txt", "b.jsonl", "README.md", "data.csv", ".hidden.txt"):
        (tmp_path / name).write_text('{"id": "b1", "text": "x"}' if name.endswith("jsonl") else "Some words here.")
    notes = []
    out = list(read_paths([str(tmp_path)], notice=notes.append))
    assert [a.id for a in out] == ["a", "b1"]
    (note,) = notes
    assert "skipped 2 file(s)" in note and "README.md" in note and "data.csv" in note and ".hidden" not in note


def test_a_file_named_directly_is_read_whatever_its_extension(tmp_path):
    notes = tmp_path / "notes.md"
    notes.write_text("Floods closed the M62 near Leeds on Monday.")
    (a,) = list(read_paths([str(notes)]))
    assert isinstance(a, Article) and a.id == "notes"
