"""The Redis index over TLS with an ACL user, against a real TLS-only redis-server and a throwaway CA.

Shown end to end through :class:`~dedup.service.Deduper` and the ``dedup`` CLI: ``rediss://`` with the CA
given in the URL (``?ssl_ca_certs=``), a user limited to its namespace's keys and the index's commands
(the rule of ``docs/redis.md``, "Running with TLS and ACLs"), and the two mistakes an operator makes: a
wrong password and a namespace outside the user's key patterns.  Neither leaks the password.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from collections import defaultdict

import pytest

from .conftest import ROOT
from dedup.index.redis.errors import AccessDenied, acl_rule
from dedup.readers import read_paths
from dedup.records import DedupError
from dedup.service import Deduper
from dedup.settings import Settings

USER, PASSWORD = "news", "Nw5-s3cret-7d1e"
WRONG = "Wr0ng-guess-42aa"


@pytest.fixture(scope="module")
def news_user(secure_redis):
    """The ACL user ``news``, allowed the keys of namespace ``news`` and the index's commands only."""
    secure_redis.add_user(USER, PASSWORD, acl_rule("news"))
    return secure_redis


def partition(story_of: dict[str, str]) -> set[frozenset[str]]:
    groups: dict[str, set[str]] = defaultdict(set)
    for aid, story in story_of.items():
        groups[story].add(aid)
    return {frozenset(g) for g in groups.values()}


def clustered(dd: Deduper, paths: list[str]) -> set[frozenset[str]]:
    ids = [o.assignment.article_id for o in dd.add_many(read_paths(paths))]
    return partition(dd.index.story_of(ids))


def cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("DEDUP_REDIS_URL", None)
    return subprocess.run([sys.executable, "-m", "dedup", *args], capture_output=True, text=True, env=env,
                          timeout=120)


@pytest.mark.parametrize("layout", ["slot", "spread"])
def test_rediss_with_the_ca_and_a_namespace_user_clusters_like_in_process(news_user, seed_paths, layout):
    settings = Settings(redis_layout=layout)
    with Deduper(settings, url=news_user.url(USER, PASSWORD), namespace="news") as dd:
        got = clustered(dd, seed_paths)
        assert got == clustered(Deduper(), seed_paths)
        assert len(got) < len(seed_paths), "the seeds hold a story of several articles"
        assert dd.stories(), "story listing and ranking read over TLS too"
        first = sorted(seed_paths)[0]
        aid = os.path.splitext(os.path.basename(first))[0]
        dd.delete(aid)
        assert dd.story_of(aid) is None
    admin = news_user.admin()
    try:
        admin.flushall()
        log = admin.acl_log()
        assert not [e for e in log if e.get("username") == USER], f"the index met an ACL refusal: {log}"
    finally:
        admin.close()


def test_the_cli_reads_the_ca_from_the_redis_url(news_user, seed_paths):
    out = cli("cluster", "--format", "jsonl", "--redis", news_user.url(USER, PASSWORD), "--namespace", "news",
              *seed_paths)
    assert out.returncode == 0, out.stderr
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    assert partition({r["id"]: r["cluster"] for r in rows}) == clustered(Deduper(), seed_paths)
    assert PASSWORD not in out.stdout + out.stderr
    admin = news_user.admin()
    admin.flushall()
    admin.close()


def test_a_wrong_password_is_one_clear_error(news_user, seed_paths, caplog):
    caplog.set_level(logging.DEBUG)
    with pytest.raises(AccessDenied) as err:
        Deduper(url=news_user.url(USER, WRONG), namespace="news")
    assert isinstance(err.value, DedupError)
    message = str(err.value)
    assert "password" in message and f"rediss://{USER}:***@127.0.0.1:{news_user.port}" in message
    assert WRONG not in message and WRONG not in caplog.text

    out = cli("cluster", "--redis", news_user.url(USER, WRONG), "--namespace", "news", *seed_paths)
    assert out.returncode != 0
    assert out.stdout == ""
    assert len(out.stderr.strip().splitlines()) == 1 and "Traceback" not in out.stderr, out.stderr
    assert out.stderr.startswith("Error: ") and "password" in out.stderr
    assert WRONG not in out.stderr


def test_a_namespace_outside_the_users_key_patterns_names_the_pattern_and_the_fix(news_user, seed_paths, caplog):
    caplog.set_level(logging.DEBUG)
    with pytest.raises(AccessDenied) as err:
        Deduper(url=news_user.url(USER, PASSWORD), namespace="sports")
    message = str(err.value)
    assert "no permissions to access one of the keys" in message  # Redis's own words
    assert "~{sports}:* ~{sports:b*}:*" in message and f"ACL SETUSER {USER} " in message
    assert "--namespace" in message
    assert PASSWORD not in message and PASSWORD not in caplog.text

    out = cli("cluster", "--redis", news_user.url(USER, PASSWORD), "--namespace", "sports", *seed_paths)
    assert out.returncode != 0 and out.stdout == ""
    assert len(out.stderr.strip().splitlines()) == 1 and "Traceback" not in out.stderr, out.stderr
    assert "~{sports}:*" in out.stderr and PASSWORD not in out.stderr


def test_a_command_the_users_acl_lacks_is_named_with_the_rule(news_user, seed_paths):
    """A user without one of the scripts' commands (HINCRBY here) is stopped at the first script that runs it."""
    news_user.add_user("narrow", PASSWORD, acl_rule("narrow").replace(" +hincrby", ""))
    try:
        with pytest.raises(AccessDenied) as err:
            with Deduper(url=news_user.url("narrow", PASSWORD), namespace="narrow") as dd:
                list(dd.add_many(read_paths(seed_paths)))
        message = str(err.value)
        assert "can't run this command" in message and "+hincrby" in message and PASSWORD not in message
    finally:
        admin = news_user.admin()
        admin.flushall()
        admin.close()


def test_the_password_appears_in_no_repr_log_or_error(news_user, seed_paths, caplog):
    caplog.set_level(logging.DEBUG)
    url = news_user.url(USER, PASSWORD)
    with Deduper(url=url, namespace="news") as dd:
        list(dd.add_many(read_paths(seed_paths)))
        for shown in (repr(dd), repr(dd.index), repr(dd.index._r), str(dd.index._r.connection_pool)):
            assert PASSWORD not in shown
    errors = []
    for bad in (news_user.url(USER, WRONG), news_user.url(USER, PASSWORD, ca=False)):
        with pytest.raises(DedupError) as err:
            Deduper(url=bad, namespace="news")
        errors.append(f"{err.value!s} {err.value!r}")
    with pytest.raises(DedupError) as err:
        Deduper(url=url, namespace="elsewhere")
    errors.append(f"{err.value!s} {err.value!r}")
    for text in [*errors, caplog.text]:
        assert PASSWORD not in text and WRONG not in text
    admin = news_user.admin()
    admin.flushall()
    admin.close()


def test_the_documented_acl_rule_is_the_one_the_index_needs():
    docs = (ROOT / "docs" / "redis.md").read_text()
    section = docs.split("## Running with TLS and ACLs", 1)[1].split("\n## ", 1)[0]
    assert f"ACL SETUSER news on >PASSWORD {acl_rule('news')}\n" in section
