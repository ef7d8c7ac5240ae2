"""The dedup command line: contracts, bad input and help."""

import json

import click
import pytest
from click.testing import CliRunner

from dedup.cli import cli

from .conftest import SEEDS, data_file


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


def test_table_and_csv_formats():
    assert "most complete" in run("cluster", str(SEEDS)).output
    lines = run("cluster", "--format", "csv", str(SEEDS)).output.splitlines()
    assert lines[0].startswith("id,cluster,rank") and len(lines) == 6


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
    gold = tmp_path / "gold.jsonl"
    with gold.open("w") as fh:
        for p in sorted(SEEDS.glob("*.txt")):
            story = "nato-jan" if p.name[:3] in ("000", "001") else p.name[:3]
            fh.write(json.dumps({"id": p.stem, "text": p.read_text(), "cluster": story}) + "\n")
    out = json.loads(run("eval", str(gold)).output)
    assert out["pairwise_f1"] == 1.0 and out["ari"] == 1.0 and out["bcubed_f1"] == 1.0


def test_eval_on_meter_dev_reaches_the_quality_bar():
    out = json.loads(run("eval", str(data_file("meter-dev.jsonl"))).output)
    assert out["pairwise_f1"] >= 0.92 and out["ari"] >= 0.92, out
