"""The dedup command line: contracts, bad input and help."""

import csv
import io
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from dedup.cli import cli

from .conftest import ROOT, SEEDS, data_file


def run(*args, input=None):
    return CliRunner().invoke(cli, list(args), input=input, catch_exceptions=False)


def test_jsonl_contract_one_object_per_article_in_input_order():
    r = run("cluster", "--format", "jsonl", str(SEEDS))
    rows = [json.loads(l) for l in r.output.splitlines()]
    assert r.exit_code == 0
    assert [x["id"] for x in rows] == sorted(p.stem for p in SEEDS.glob("*.txt"))
    cl = {x["id"][:3]: x["cluster"] for x in rows}
    assert cl["000"] == cl["001"] and len({cl["000"], cl["002"], cl["003"], cl["004"]}) == 4


def test_json_contract_lists_stories_with_ranked_articles():
    r = run("cluster", "--format", "json", str(SEEDS))
    doc = json.loads(r.output)
    big = [s for s in doc["stories"] if len(s["articles"]) == 2][0]
    assert [a["rank"] for a in big["articles"]] == [1, 2]
    assert big["articles"][0]["id"].startswith("000") and big["articles"][0]["unique_sentences"]


def test_seed_stories_nest_in_their_events():
    """000/001 are rewrites of one AP story; 002 and 003 two wires' reports of one NATO meeting (one event,
    two stories); 004 a 2018 story on the same subject, alone."""
    doc = json.loads(run("cluster", "--format", "json", str(SEEDS)).output)
    stories = sorted(sorted(a["id"][:3] for a in s["articles"]) for s in doc["stories"])
    assert stories == [["000", "001"], ["002"], ["003"], ["004"]]
    members = {s["id"]: [a["id"][:3] for a in s["articles"]] for s in doc["stories"]}
    events = sorted(sorted(x for sid in e["stories"] for x in members[sid]) for e in doc["events"])
    assert events == [["000", "001"], ["002", "003"], ["004"]]
    assert all(s["event"] in {e["id"] for e in doc["events"]} for s in doc["stories"])
    table = run("cluster", str(SEEDS)).output
    assert "related coverage (same event): 003_" in table


def test_table_lists_stories_with_the_most_complete_variant_marked():
    out = run("cluster", str(SEEDS)).output
    assert out.startswith("STORY ") and out.count("STORY ") == 4 and "most complete" in out


def test_csv_has_the_jsonl_fields_with_lists_joined():
    jsonl = [json.loads(l) for l in run("cluster", "--format", "jsonl", str(SEEDS)).output.splitlines()]
    table = list(csv.DictReader(io.StringIO(run("cluster", "--format", "csv", str(SEEDS)).output)))
    assert list(table[0]) == list(jsonl[0]) and len(table) == len(jsonl) == 5
    for row, obj in zip(table, jsonl):
        assert row["unique_sentences"] == " | ".join(obj["unique_sentences"])
        assert row["most_complete"] == str(obj["most_complete"]).lower()
        assert (row["id"], row["cluster"], row["action"]) == (obj["id"], obj["cluster"], obj["action"])
        assert float(row["coverage"]) == obj["coverage"] and int(row["rank"]) == obj["rank"]


def test_a_one_article_story_lists_no_unique_sentences_in_any_format():
    """With nothing to compare against, no sentence is unique: the same in every format."""
    doc = json.loads(run("cluster", "--format", "json", str(SEEDS)).output)
    single = [s for s in doc["stories"] if s["size"] == 1]
    assert single and all(s["articles"][0]["unique_sentences"] == [] for s in single)
    rows = [json.loads(l) for l in run("cluster", "--format", "jsonl", str(SEEDS)).output.splitlines()]
    assert all(r["unique_sentences"] == [] for r in rows if r["story_size"] == 1)


def test_output_goes_to_a_file_with_o(tmp_path):
    target = tmp_path / "out.jsonl"
    r = run("cluster", "--format", "jsonl", "-o", str(target), str(SEEDS))
    assert r.exit_code == 0 and r.stdout == ""
    assert len(target.read_text().splitlines()) == 5


def test_an_unwritable_output_file_is_an_input_error_before_any_work(tmp_path):
    r = CliRunner().invoke(cli, ["cluster", "-o", str(tmp_path / "no" / "such" / "dir.csv"), str(SEEDS)])
    assert r.exit_code == 2 and "-o/--output" in r.stderr and "Traceback" not in r.output


def test_bad_items_are_reported_and_the_batch_goes_on(tmp_path):
    feed = tmp_path / "feed.jsonl"
    feed.write_bytes(b'{"id": "a", "text": "Floods closed the M62 near Leeds on Monday."}\n{oops\n'
                     b'{"text": "no id here"}\n{"id": "b", "text": "caf\xe9 owners in Leeds cleaned up after the floods."}\n')
    r = CliRunner().invoke(cli, ["cluster", "--format", "jsonl", str(feed)])
    assert r.exit_code == 1
    assert [json.loads(l)["id"] for l in r.stdout.splitlines()] == ["a", "b"]
    assert "feed.jsonl:2" in r.stderr and "feed.jsonl:3" in r.stderr and "not valid UTF-8" in r.stderr
    ok = CliRunner().invoke(cli, ["cluster", "--skip-bad", "--format", "jsonl", str(feed)])
    assert ok.exit_code == 0


def test_stdin_and_environment_settings(monkeypatch):
    monkeypatch.setenv("DEDUP_MIN_COSINE", "0.99")
    r = run("settings")
    assert json.loads(r.output)["min_cosine"] == 0.99
    r = run("cluster", "--format", "jsonl", "-", input='{"id": "s1", "text": "Snow closed schools across Kent."}\n')
    assert json.loads(r.output)["id"] == "s1"


def test_inconsistent_settings_are_a_usage_error():
    r = CliRunner().invoke(cli, ["cluster", "--bands", "7", str(SEEDS)])
    assert r.exit_code == 2 and "bands x rows" in r.output


def _commands(group: click.Group, prefix=()):
    for name, cmd in group.commands.items():
        yield prefix + (name,), cmd
        if isinstance(cmd, click.Group):
            yield from _commands(cmd, prefix + (name,))


@pytest.mark.parametrize("path", [p for p, _ in _commands(cli)], ids=lambda p: " ".join(p))
def test_every_command_has_help_with_an_example(path):
    r = run(*path, "--help")
    assert r.exit_code == 0 and "Example" in r.output and "dedup " in r.output.split("Example", 1)[1]


def test_eval_reports_pairwise_ari_and_bcubed_on_seeds_labels(tmp_path):
    out = json.loads(run("eval", str(_seed_gold(tmp_path / "gold.jsonl"))).output)
    assert out["pairwise_f1"] == 1.0 and out["ari"] == 1.0 and out["bcubed_f1"] == 1.0


def test_eval_on_meter_dev_reaches_the_quality_bar():
    out = json.loads(run("eval", str(data_file("meter-dev.jsonl"))).output)
    assert out["pairwise_f1"] >= 0.92 and out["ari"] >= 0.92, out


def _seed_gold(path, with_labels=True):
    """The seed articles as a JSONL file, labelled with their true stories (000 and 001 are one)."""
    with path.open("w") as fh:
        for p in sorted(SEEDS.glob("*.txt")):
            row = {"id": p.stem, "text": p.read_text()}
            if with_labels:
                row["cluster"] = "nato-jan" if p.name[:3] in ("000", "001") else p.name[:3]
            fh.write(json.dumps(row) + "\n")
    return path


def _one_line_error(r):
    """An input error: exit 2, one line on stderr naming the problem, no traceback."""
    assert r.exit_code == 2, r.output
    assert "Traceback" not in r.output and r.stderr.count("\n") == 1, r.stderr
    return r.stderr


def test_eval_missing_gold_file_is_a_one_line_error(tmp_path):
    err = _one_line_error(CliRunner().invoke(cli, ["eval", str(tmp_path / "gold.jsonl")]))
    assert "gold.jsonl" in err and "cannot read" in err


def test_eval_missing_pairs_file_is_a_one_line_error_before_clustering(tmp_path):
    gold = _seed_gold(tmp_path / "gold.jsonl")
    err = _one_line_error(CliRunner().invoke(cli, ["eval", str(gold), "--pairs", str(tmp_path / "pairs.jsonl")]))
    assert "pairs.jsonl" in err and "cannot read" in err


def test_eval_text_file_is_refused_as_not_jsonl(tmp_path):
    story = tmp_path / "story.txt"
    story.write_text("Floods closed the M62 near Leeds on Monday.\n")
    err = _one_line_error(CliRunner().invoke(cli, ["eval", str(story)]))
    assert f"{story}:1" in err and "must be JSONL" in err


def test_eval_malformed_line_names_file_and_line(tmp_path):
    gold = _seed_gold(tmp_path / "gold.jsonl")
    gold.write_text(gold.read_text() + '{"id": "broken", "text": \n')
    n = len(gold.read_text().splitlines())
    err = _one_line_error(CliRunner().invoke(cli, ["eval", str(gold)]))
    assert f"gold.jsonl:{n}" in err and "not JSON" in err


def test_eval_malformed_pairs_line_names_the_missing_field(tmp_path):
    gold = _seed_gold(tmp_path / "gold.jsonl")
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text('{"id1": "000_ap_nato", "id2": "001_guardian_nato", "overall": 1.0}\n{"id1": "a", "id2": "b"}\n')
    err = _one_line_error(CliRunner().invoke(cli, ["eval", str(gold), "--pairs", str(pairs)]))
    assert "pairs.jsonl:2" in err and "'overall'" in err


def test_eval_refuses_a_gold_file_without_cluster_labels(tmp_path):
    """Zero labelled articles would score a perfect 1.0 while measuring nothing."""
    gold = _seed_gold(tmp_path / "gold.jsonl", with_labels=False)
    r = CliRunner().invoke(cli, ["eval", str(gold)])
    err = _one_line_error(r)
    assert "'cluster'" in err and r.stdout == ""


def test_eval_of_unlabelled_gold_with_pairs_reports_pairs_only(tmp_path):
    gold = _seed_gold(tmp_path / "gold.jsonl", with_labels=False)
    ids = sorted(p.stem for p in SEEDS.glob("*.txt"))
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text(json.dumps({"id1": ids[0], "id2": ids[1], "overall": 1.0}) + "\n"
                     + json.dumps({"id1": ids[0], "id2": ids[2], "overall": 4.0}) + "\n")
    out = json.loads(run("eval", str(gold), "--pairs", str(pairs)).output)
    assert "pairwise_f1" not in out and out["articles"] == 0
    assert out["pairs"]["by_score"] == [{"score": 1.0, "pairs": 1, "merged": 1, "merged_share": 1.0},
                                        {"score": 4.0, "pairs": 1, "merged": 0, "merged_share": 0.0}]


def test_folders_by_day_keep_same_named_files_apart_and_skips_are_named(tmp_path):
    for day, text in (("mon", "Floods closed the M62 near Leeds on Monday."),
                      ("tue", "Snow closed schools across Kent on Tuesday morning.")):
        (tmp_path / day).mkdir()
        (tmp_path / day / "story.txt").write_text(text)
    (tmp_path / "README.md").write_text("How this folder was collected.")
    r = CliRunner().invoke(cli, ["cluster", "--format", "jsonl", str(tmp_path)])
    assert r.exit_code == 0
    assert [json.loads(l)["id"] for l in r.stdout.splitlines()] == ["mon/story", "tue/story"]
    assert "skipped 1 file(s)" in r.stderr and "README.md" in r.stderr


def test_a_repeated_id_is_warned_about_on_stderr(tmp_path):
    feed = tmp_path / "feed.jsonl"
    feed.write_text('{"id": "a", "text": "Floods closed the M62 near Leeds on Monday."}\n'
                    '{"id": "a", "text": "Snow closed schools across Kent on Tuesday."}\n')
    r = CliRunner().invoke(cli, ["cluster", "--format", "jsonl", str(feed)])
    assert r.exit_code == 0
    assert "warning:" in r.stderr and "feed.jsonl:1" in r.stderr and "feed.jsonl:2" in r.stderr


def test_a_binary_file_is_rejected_naming_it(tmp_path):
    ls = tmp_path / "ls.txt"
    ls.write_bytes(b"\x7fELF" + b"\0" * 64)
    r = CliRunner().invoke(cli, ["cluster", "--format", "csv", str(ls)])
    assert r.exit_code == 1 and f"error: {ls}: binary data" in r.stderr and "\0" not in r.stdout


def test_progress_bars_cover_clustering_ranking_and_writing_with_totals():
    r = CliRunner().invoke(cli, ["cluster", "--progress", "--format", "jsonl", str(SEEDS)])
    assert r.exit_code == 0
    for phase, total in (("clustering", "5/5"), ("ranking", "4/4"), ("writing", "5/5")):
        assert re.search(rf"{phase}: 100%\|[^|]*\| {total} \[\d\d:\d\d<\d\d:\d\d", r.stderr), phase  # ETA after <


def test_no_progress_off_a_terminal_or_with_no_progress():
    assert "clustering" not in CliRunner().invoke(cli, ["cluster", str(SEEDS)]).stderr
    assert "clustering" not in CliRunner().invoke(cli, ["cluster", "--no-progress", str(SEEDS)]).stderr


def test_boolean_settings_are_flags():
    r = run("settings", "--store-features")
    assert json.loads(r.output)["store_features"] is True
    assert json.loads(run("settings", "--no-store-features").output)["store_features"] is False


def test_help_puts_redis_tuning_in_its_own_section_and_leaves_out_unused_settings():
    cluster_help = run("cluster", "--help").output
    options, shared = cluster_help.split("Shared index (Redis):")
    assert "--redis-retry-s" in shared and "--redis-retry-s" not in options and "--port" in options
    delete_help = run("delete", "--help").output
    assert "--jobs" not in delete_help and "--max-chars" not in delete_help and "--same-sentence" not in delete_help
    assert "--format" in delete_help and "--output" in delete_help


# -- the shared index: stories, show, delete ------------------------------------
@pytest.fixture
def shared(redis_url):
    """The seed articles clustered into the test Redis; yields its URL."""
    assert run("cluster", "--redis", redis_url, "--format", "jsonl", str(SEEDS)).exit_code == 0
    return redis_url


def test_stories_lists_the_largest_first_and_filters_by_size(shared):
    rows = [json.loads(l) for l in run("stories", "--redis", shared, "--format", "jsonl").output.splitlines()]
    assert [r["story_size"] for r in rows] == [2, 2, 1, 1, 1] and rows[0]["action"] is None
    doc = json.loads(run("stories", "--redis", shared, "--min-size", "2", "--format", "json").output)
    assert [s["size"] for s in doc["stories"]] == [2]
    assert len(json.loads(run("stories", "--redis", shared, "--limit", "2", "--format", "json").output)["stories"]) == 2


def test_stories_sorted_by_recent_put_the_latest_publication_first(redis_url, tmp_path):
    feed = tmp_path / "feed.jsonl"
    feed.write_text("".join(json.dumps({"id": i, "published": day, "text": text}) + "\n" for i, day, text in (
        ("floods", "2020-01-20", "Floods closed the M62 near Leeds on Monday after heavy rain."),
        ("snow", "2020-01-22", "Snow closed schools across Kent as temperatures fell below zero."),
        ("budget", "2020-01-21", "The chancellor delayed the budget vote until the spring session."))))
    assert run("cluster", "--redis", redis_url, str(feed)).exit_code == 0
    doc = json.loads(run("stories", "--redis", redis_url, "--sort", "recent", "--format", "json").output)
    assert [s["articles"][0]["id"] for s in doc["stories"]] == ["snow", "budget", "floods"]


def test_show_finds_a_story_by_its_id_or_by_one_of_its_articles(shared):
    ids = sorted(p.stem for p in SEEDS.glob("*.txt"))
    by_article = json.loads(run("show", "--redis", shared, "--format", "json", ids[1]).output)
    (story,) = by_article["stories"]
    assert {a["id"] for a in story["articles"]} == {ids[0], ids[1]}
    assert json.loads(run("show", "--redis", shared, "--format", "json", story["id"]).output) == by_article
    r = CliRunner().invoke(cli, ["show", "--redis", shared, "nope"])
    assert r.exit_code == 1 and "'nope' is neither a story nor an article" in r.stderr


def test_the_shared_index_commands_need_redis():
    for cmd in (["stories"], ["show", "x"], ["delete", "x"]):
        r = CliRunner().invoke(cli, cmd)
        assert r.exit_code == 2 and "--redis" in r.stderr, cmd


def test_delete_prints_in_every_format(shared):
    ids = sorted(p.stem for p in SEEDS.glob("*.txt"))
    r = CliRunner().invoke(cli, ["delete", "--redis", shared, "--format", "jsonl", ids[1], "nope"])
    assert r.exit_code == 1 and "'nope' is not in the index" in r.stderr
    assert [json.loads(l) for l in r.stdout.splitlines()] == [{"id": ids[1], "stories": [ids[0]]}]
    r = CliRunner().invoke(cli, ["delete", "--redis", shared, "--format", "csv", ids[0]])
    assert r.stdout.splitlines() == ["id,stories", f"{ids[0]},"]
    r = CliRunner().invoke(cli, ["delete", "--redis", shared, ids[2]])
    assert r.stdout == f"deleted {ids[2]}; its story is now no story (it was the only article)\n"


# -- output schemas (docs/output.md, docs/schemas/) --------------------------------
SCHEMAS = ROOT / "docs" / "schemas"
DOC_FORMATS = {"cluster": "article", "stories": "article", "show": "article", "delete": "deletion"}


def _validator(name):
    from jsonschema import Draft202012Validator
    from referencing import Registry, Resource

    docs = {p.name: json.loads(p.read_text()) for p in SCHEMAS.glob("*.json")}
    registry = Registry().with_resources((n, Resource.from_contents(d)) for n, d in docs.items())
    return Draft202012Validator(docs[name + ".json"], registry=registry)


def _from_csv_cell(cell: str, prop: dict):
    """A CSV cell back to the JSON value the schema describes (lists joined with ' | ')."""
    kind = prop.get("type") or ("string" if None not in prop.get("enum", [None]) else None)
    if kind == "array":
        return cell.split(" | ") if cell else []
    if cell == "" and kind in (None, "integer", "number"):
        return None
    return {"boolean": lambda c: {"true": True, "false": False}[c], "integer": int, "number": float}.get(
        kind, lambda c: c)(cell)


def check_output(text: str, fmt: str, command: str) -> int:
    """Validate one command's output against its schema; returns how many records it held."""
    if fmt == "table":
        assert text.startswith("STORY ") or text.startswith("deleted "), text[:80]
        return text.count("\n")
    row = DOC_FORMATS[command]
    if fmt == "json":
        _validator("deletions" if row == "deletion" else "stories").validate(json.loads(text))
        return 1
    validator = _validator(row)
    if fmt == "jsonl":
        records = [json.loads(line) for line in text.splitlines()]
    else:
        props = validator.schema["properties"]
        table = list(csv.DictReader(io.StringIO(text)))
        assert list(table[0]) == validator.schema["required"]
        records = [{k: _from_csv_cell(v, props[k]) for k, v in r.items()} for r in table]
    for r in records:
        validator.validate(r)
        if fmt == "jsonl":
            assert list(r) == validator.schema["required"]  # the same order as the CSV columns
    return len(records)


@pytest.mark.parametrize("fmt", ["table", "json", "jsonl", "csv"])
def test_cluster_output_matches_its_schema_in_every_format(fmt):
    assert check_output(run("cluster", "--format", fmt, str(SEEDS)).output, fmt, "cluster")


@pytest.mark.parametrize("fmt", ["json", "jsonl", "csv"])
def test_stories_show_and_delete_output_match_their_schemas(shared, fmt):
    ids = sorted(p.stem for p in SEEDS.glob("*.txt"))
    assert check_output(run("stories", "--redis", shared, "--format", fmt).output, fmt, "stories")
    assert check_output(run("show", "--redis", shared, "--format", fmt, ids[0]).output, fmt, "show")
    assert check_output(run("delete", "--redis", shared, "--format", fmt, ids[0]).output, fmt, "delete")


def test_docs_describe_every_field_of_every_schema():
    doc = (ROOT / "docs" / "output.md").read_text()
    for path in SCHEMAS.glob("*.json"):
        assert f"schemas/{path.name}" in doc, path.name
        for name in json.loads(path.read_text()).get("properties", {}):
            assert f"`{name}`" in doc, (path.name, name)


def test_the_examples_in_docs_output_md_run_and_match_the_schemas(redis_url, tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    monkeypatch.setenv("DEDUP_REDIS_URL", redis_url)
    block = (ROOT / "docs" / "output.md").read_text().split("```console\n", 1)[1].split("```", 1)[0]
    commands = [shlex.split(line[2:]) for line in block.splitlines() if line.startswith("$ dedup ")]
    assert len(commands) >= 8
    for argv in commands:
        args = argv[1:]
        target = None
        if "-o" in args:
            at = args.index("-o") + 1
            target = args[at] = str(tmp_path / args[at])
        r = CliRunner().invoke(cli, args)
        assert r.exit_code == 0, (argv, r.output)
        fmt = args[args.index("--format") + 1] if "--format" in args else "table"
        text = Path(target).read_text() if target else r.stdout
        assert check_output(text, fmt, args[0]), argv


def test_the_dashboard_does_not_import_the_cli():
    """dedup.web and dedup.cli share dedup.console; an import of cli from web, even inside a function, is a cycle."""
    import ast

    for path in (ROOT / "dedup" / "web").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                name = "." * node.level + (node.module or "")
                assert name not in ("..cli", "dedup.cli"), f"{path.name} imports {name}"
            elif isinstance(node, ast.Import):
                assert all(a.name != "dedup.cli" for a in node.names), path.name


def test_a_shared_index_setting_without_redis_is_a_usage_error(tmp_path):
    result = CliRunner().invoke(cli, ["cluster", "--retain-days", "3", str(SEEDS)])
    assert result.exit_code == 2 and "--retain-days" in result.output and "Traceback" not in result.output


def test_drop_deletes_one_namespace_and_leaves_the_others(redis_url):
    import redis as redis_client

    for ns in ("gone", "kept"):
        assert run("cluster", "--redis", redis_url, "--namespace", ns, str(SEEDS)).exit_code == 0
    refused = CliRunner().invoke(cli, ["drop", "--redis", redis_url, "--namespace", "gone"])
    assert refused.exit_code == 2 and "--yes" in refused.output
    r = CliRunner().invoke(cli, ["drop", "--redis", redis_url, "--namespace", "gone", "--yes"])
    assert r.exit_code == 0, r.output
    client = redis_client.Redis.from_url(redis_url)
    left = [k.decode() for k in client.scan_iter()]
    assert left and all(k.startswith("{kept") for k in left), left
    client.close()
    # the dropped namespace opens empty
    listed = CliRunner().invoke(cli, ["stories", "--redis", redis_url, "--namespace", "gone", "--format", "jsonl"])
    assert listed.exit_code == 0 and listed.output.strip() == ""


# -- the README's examples --------------------------------------------------------------------
def readme_examples() -> list[tuple[list[str], list[str]]]:
    """(command line, the output lines the README shows) of every ``$ dedup ...`` line in README.md."""
    out: list[tuple[list[str], list[str]]] = []
    for block in (ROOT / "README.md").read_text(encoding="utf-8").split("```")[1::2]:
        for line in block.splitlines():
            if line.startswith("$ dedup "):
                out.append((shlex.split(line[2:]), []))
            elif out and line.strip() and not line.startswith("$ "):
                out[-1][1].append(line)
    return out


def shown_in(shown: list[str], actual: list[str]) -> list[str]:
    """The shown lines not found in ``actual``, in order; '...' in a shown line stands for any text."""
    missing, pos = [], 0
    for line in shown:
        pieces = [p.strip() for p in line.split("...") if p.strip()]
        if not pieces:
            continue
        for j in range(pos, len(actual)):
            at = 0
            for p in pieces:
                at = actual[j].find(p, at)
                if at < 0:
                    break
                at += len(p)
            if at >= 0:
                pos = j + 1
                break
        else:
            missing.append(line)
    return missing


def test_the_readme_examples_run_and_print_what_the_readme_shows(redis_url, tmp_path, monkeypatch):
    (tmp_path / "seeds").symlink_to(SEEDS)
    gold = {"000": "a", "001": "a", "002": "b", "003": "c", "004": "d"}
    with (tmp_path / "gold.jsonl").open("w", encoding="utf-8") as f:
        for p in sorted(SEEDS.glob("*.txt")):
            f.write(json.dumps({"id": p.stem, "text": p.read_text(encoding="utf-8"), "cluster": gold[p.stem[:3]]}) + "\n")
    monkeypatch.chdir(tmp_path)
    examples = readme_examples()
    assert len(examples) >= 7
    ran = 0
    for argv, shown in examples:
        args = [redis_url if a == "redis://localhost:6379/0" else a for a in argv[1:]]
        if args[0] == "serve":  # a server that runs until stopped: tests/test_web.py starts it
            continue
        # a process of its own, as typed: the worker logs to the process's stderr
        done = subprocess.run([sys.executable, "-m", "dedup", *args], capture_output=True, text=True, timeout=120,
                              env={**os.environ, "PYTHONPATH": str(ROOT), "TOKEN": "t"})
        output = done.stdout + done.stderr
        assert done.returncode == 0, (argv, output[-2000:])
        assert shown_in(shown, output.splitlines()) == [], (argv, output[-2000:])
        ran += 1
    assert ran >= 6
