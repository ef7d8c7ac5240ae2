"""Input parsing: files, directories, JSON, JSONL and stdin into :class:`Article` records.

Every bad item becomes a :class:`BadInput` that names its file and line; the
reader never stops a batch for one item and never drops one silently.
Accepted fields: ``id`` (or ninjs ``uri``/``guid``), ``title`` (or
``headline``), ``text`` (or ``body``, ninjs ``body_text``, ``body_html``),
``source``, ``published`` (or ``date``, ninjs ``versioncreated``/
``firstcreated``), ``url``.

A directory is read recursively for the :data:`DIRECTORY_SUFFIXES` only
(hidden files and folders are ignored); other files are named on stderr as
skipped.  A text file becomes one article whose id is its path relative to
the folder given, without extension (``mon/story.txt`` -> ``mon/story``); a
file named directly is read whatever its extension, its id being its name
without extension.  Binary input (NUL bytes, or mostly bytes that are not
UTF-8) is rejected as bad input.  An id seen twice in one batch is warned
about with both places; the later item replaces the earlier one.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any, BinaryIO, Callable, Iterable, Iterator

from .records import Article, BadInput, parse_published

TEXT_SUFFIXES = {".txt", ".text", ".md", ".html", ".htm"}
JSON_SUFFIXES = {".json", ".jsonl", ".ndjson"}
# what a directory is read for: a README.md or notes.html lying in an input folder is not an article
DIRECTORY_SUFFIXES = (".txt", ".json", ".jsonl", ".ndjson")
# undecodable share above which bytes are taken for binary, not text with a few stray Latin-1 bytes
BINARY_SHARE = 0.05
ID_FIELDS = ("id", "uri", "guid")
TITLE_FIELDS = ("title", "headline")
TEXT_FIELDS = ("text", "body", "body_text", "body_html", "content")
DATE_FIELDS = ("published", "date", "versioncreated", "firstcreated")


def decode(data: bytes, where: str) -> tuple[str, list[str]]:
    """UTF-8 text; undecodable bytes are replaced and the item carries a warning."""
    try:
        return data.decode("utf-8-sig"), []
    except UnicodeDecodeError as exc:
        text = data.decode("utf-8", errors="replace")
        bad = text.count("\ufffd")
        return text, [f"{where}: not valid UTF-8 (first bad byte at offset {exc.start}); {bad} character(s) replaced"]


def _first(obj: dict[str, Any], names: Iterable[str]) -> Any:
    for n in names:
        v = obj.get(n)
        if v not in (None, ""):
            return v
    return None


_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def _without_surrogates(value: str, field: str, where: str, warnings: list[str]) -> str:
    """JSON may escape half a UTF-16 pair (``"\\ud800"``): not text, and not encodable as UTF-8.

    Replaced by U+FFFD with a warning naming the field, so the article is
    still clustered and stored instead of failing later in hashing or storage.
    """
    if not _LONE_SURROGATE.search(value):
        return value
    warnings.append(f"{where}: {field} held unpaired UTF-16 surrogates, replaced by U+FFFD")
    return _LONE_SURROGATE.sub("\ufffd", value)


def article_from_json(obj: Any, where: str, warnings: list[str] | None = None) -> Article:
    """One JSON object (our fields or IPTC ninjs) as an Article; raises BadInput."""
    if not isinstance(obj, dict):
        raise BadInput(where, f"expected a JSON object, got {type(obj).__name__}", "one article object per line")
    raw_id = _first(obj, ID_FIELDS)
    if raw_id is None or not str(raw_id).strip():
        raise BadInput(where, "missing id", "add an 'id' field")
    text = _first(obj, TEXT_FIELDS)
    if not isinstance(text, str) or not text.strip():
        raise BadInput(where + f" (id {raw_id})", "empty text", "put the article body in 'text' or 'body'")
    title = _first(obj, TITLE_FIELDS) or ""
    if not isinstance(title, str):
        title = str(title)
    published, warn = parse_published(_first(obj, DATE_FIELDS), where)
    src = obj.get("source") or obj.get("provider") or ""
    if isinstance(src, dict):
        src = src.get("name", "")
    notes = list(warnings or [])
    fields = {"id": str(raw_id).strip(), "text": text, "title": title, "source": str(src),
              "url": str(obj.get("url") or "")}
    fields = {k: _without_surrogates(v, k, where, notes) for k, v in fields.items()}
    art = Article(**fields, published=published, origin=where, warnings=notes)
    if warn:
        art.warnings.append(warn)
    return art


def read_jsonl(data: bytes, name: str) -> Iterator[Article | BadInput]:
    for lineno, raw in enumerate(data.split(b"\n"), start=1):
        if not raw.strip():
            continue
        where = f"{name}:{lineno}"
        line, warnings = decode(raw, where)
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            yield BadInput(where, f"malformed JSON ({exc.msg} at column {exc.colno})", "fix or remove the line")
            continue
        try:
            yield article_from_json(obj, where, warnings)
        except BadInput as exc:
            yield exc


def read_json(data: bytes, name: str) -> Iterator[Article | BadInput]:
    text, warnings = decode(data, name)
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        yield BadInput(f"{name}:{exc.lineno}", f"malformed JSON ({exc.msg})", "fix the file or use JSONL")
        return
    if isinstance(obj, dict) and isinstance(obj.get("articles"), list):
        obj = obj["articles"]
    items = obj if isinstance(obj, list) else [obj]
    for i, item in enumerate(items):
        where = f"{name}[{i}]" if isinstance(obj, list) else name
        try:
            yield article_from_json(item, where, warnings)
        except BadInput as exc:
            yield exc


def read_text(data: bytes, name: str, article_id: str) -> Iterator[Article | BadInput]:
    text, warnings = decode(data, name)
    if not text.strip():
        yield BadInput(name, "empty text", "the file has no article text")
        return
    yield Article(id=article_id, text=text, origin=name, warnings=warnings)


def binary_problem(data: bytes) -> str | None:
    """Why ``data`` is not text (NUL bytes, mostly undecodable), or None when it is text."""
    nul = data.count(b"\0")
    if nul:
        return f"binary data, not text ({nul:,} NUL bytes)"
    try:
        data.decode("utf-8")
        return None
    except UnicodeDecodeError:
        text = data.decode("utf-8", errors="replace")
    bad = text.count("\ufffd")
    if bad > BINARY_SHARE * max(len(text), 1):
        return f"binary data, not text ({bad:,} of {len(text):,} characters are not UTF-8)"
    return None


def read_bytes(data: bytes, name: str, suffix: str = "", article_id: str | None = None
               ) -> Iterator[Article | BadInput]:
    """Dispatch on suffix; without one, JSONL when the content starts with '{', else one text article.

    ``article_id`` is the id of a text article (default: ``name`` without folder and extension).
    """
    problem = binary_problem(data)
    if problem:
        yield BadInput(name, problem, "pass UTF-8 text, JSON or JSONL; convert UTF-16 or Latin-1 files to UTF-8")
        return
    suffix = suffix.lower()
    if suffix in (".jsonl", ".ndjson"):
        yield from read_jsonl(data, name)
    elif suffix == ".json":
        yield from read_json(data, name)
    elif suffix in TEXT_SUFFIXES:
        yield from read_text(data, name, article_id or Path(name).stem)
    elif data.lstrip().startswith(b"{"):
        yield from read_jsonl(data, name)
    elif data.lstrip().startswith(b"["):
        yield from read_json(data, name)
    else:
        yield from read_text(data, name, article_id or Path(name).stem or "stdin")


def _to_stderr(message: str) -> None:
    print(f"note: {message}", file=sys.stderr)


def read_paths(paths: Iterable[str], stdin: BinaryIO | None = None,
               notice: Callable[[str], None] = _to_stderr) -> Iterator[Article | BadInput]:
    """Every article under ``paths`` (files, directories, ``-`` for stdin), in order.

    ``notice`` hears about files a directory held but that were not read.
    An article whose id came earlier in the batch carries a warning naming both places.
    """
    seen: dict[str, str] = {}
    for item in _read_all(paths, stdin, notice):
        if isinstance(item, Article):
            earlier = seen.get(item.id)
            here = item.origin or item.id
            if earlier is not None:
                item.warnings.append(f"{here}: id {item.id!r} was already read at {earlier}; "
                                     "this item replaces that one")
            seen[item.id] = here
        yield item


def _read_all(paths: Iterable[str], stdin: BinaryIO | None, notice: Callable[[str], None]
              ) -> Iterator[Article | BadInput]:
    for p in paths:
        if p == "-":
            data = (stdin or sys.stdin.buffer).read()
            yield from read_bytes(data, "<stdin>")
            continue
        path = Path(p)
        if not path.is_dir():
            yield from _read_file(path)
            continue
        files, skipped = [], []
        for f in sorted(path.rglob("*")):
            rel = f.relative_to(path)
            if not f.is_file() or any(part.startswith(".") for part in rel.parts):
                continue
            (files if f.suffix.lower() in DIRECTORY_SUFFIXES else skipped).append(f)
        if skipped:
            names = ", ".join(str(f.relative_to(path)) for f in skipped[:5])
            more = f" and {len(skipped) - 5} more" if len(skipped) > 5 else ""
            notice(f"{path}: skipped {len(skipped)} file(s) not ending {', '.join(DIRECTORY_SUFFIXES)}: "
                   f"{names}{more}")
        if not files:
            yield BadInput(str(path), f"directory holds no {', '.join(DIRECTORY_SUFFIXES)} files")
        for f in files:
            yield from _read_file(f, f.relative_to(path).with_suffix("").as_posix())


def _read_file(path: Path, article_id: str | None = None) -> Iterator[Article | BadInput]:
    try:
        data = path.read_bytes()
    except OSError as exc:
        yield BadInput(str(path), f"cannot read file: {exc.strerror or exc}", "check the path and permissions")
        return
    yield from read_bytes(data, str(path), path.suffix, article_id)


def read_objects(path: str, what: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """``(file:line, object)`` for each line of a JSONL file that must be whole, such as labels.

    Unlike :func:`read_paths`, which reports a bad item and goes on, the first
    problem raises :class:`BadInput`: a score over part of the labels would
    measure something else.
    """
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise BadInput(path, f"cannot read {what}: {exc.strerror or exc}", "check the path") from None
    if b"\0" in data:
        raise BadInput(path, f"{what} is binary, not JSONL", "pass a JSONL file, one JSON object per line")
    for lineno, raw in enumerate(data.split(b"\n"), start=1):
        if not raw.strip():
            continue
        where = f"{path}:{lineno}"
        try:
            obj = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            why = f"{exc.msg} at column {exc.colno}" if isinstance(exc, json.JSONDecodeError) else "not UTF-8"
            raise BadInput(where, f"{what} must be JSONL, one JSON object per line; this line is not JSON ({why})",
                           "fix or remove the line") from None
        if not isinstance(obj, dict):
            raise BadInput(where, f"expected a JSON object, got {type(obj).__name__}", "one JSON object per line")
        yield where, obj


def read_labels(path: str) -> dict[str, str | None]:
    """Gold story labels (``cluster`` field) of a labelled JSONL file, for ``dedup eval``.

    Articles without a ``cluster`` field map to None (unlabelled background).
    Raises :class:`BadInput` naming the file and line of the first problem.
    """
    labels: dict[str, str | None] = {}
    for where, obj in read_objects(path, "a labelled file"):
        raw_id = _first(obj, ID_FIELDS)
        if raw_id is None or not str(raw_id).strip():
            raise BadInput(where, "missing id", "add an 'id' field")
        label = obj.get("cluster")
        labels[str(raw_id).strip()] = None if label is None else str(label)
    return labels


def read_pairs(path: str, score_field: str = "overall") -> list[tuple[str, str, float]]:
    """Labelled pairs ``(id1, id2, score)`` of a pairs JSONL file (``dedup eval --pairs``); raises BadInput."""
    pairs = []
    for where, obj in read_objects(path, "a pairs file"):
        missing = [k for k in ("id1", "id2", score_field) if k not in obj]
        if missing:
            raise BadInput(where, f"pair without {', '.join(repr(k) for k in missing)}",
                           f"every line needs 'id1', 'id2' and a numeric {score_field!r}")
        try:
            score = float(obj[score_field])
        except (TypeError, ValueError):
            raise BadInput(where, f"{score_field!r} is {obj[score_field]!r}, not a number") from None
        pairs.append((str(obj["id1"]), str(obj["id2"]), score))
    return pairs
